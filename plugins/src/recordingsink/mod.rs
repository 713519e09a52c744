//! `TesseraRecordingSink`: the abstract base class of `tesseras3sink` and `tesseralocalsink`.
//!
//! It does what both do: the `spool-dir` and `finish-timeout` properties, the recording itself
//! (spool, journal and uploader: `recorder.rs`), EOS, seeks back, and the bus messages of
//! [`sink`](crate::sink). A subclass adds the properties of its destination and says, when the
//! element starts, where the recording goes ([`RecordingSinkImpl::plan`]). A new destination
//! is a new subclass (`ParentType = RecordingSink`) in a folder of its own.

use std::path::PathBuf;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::recorder::Target;

mod imp;

glib::wrapper! {
    pub struct RecordingSink(ObjectSubclass<imp::RecordingSink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

/// Where a recording goes, as a subclass decides it when the element starts.
#[derive(Debug)]
pub struct Plan {
    pub target: Target,
    /// The spool directory when `spool-dir` is not set.
    pub default_spool_dir: PathBuf,
    /// The smallest part to store (S3 requires 5 MiB for all parts but the last).
    pub min_part_size: u64,
}

/// What a subclass of [`RecordingSink`] implements.
pub trait RecordingSinkImpl: BaseSinkImpl + ObjectSubclass<Type: IsA<RecordingSink>> {
    /// Where the recording goes, from the element's settings. An error (a required property
    /// not set) fails the start.
    fn plan(&self) -> Result<Plan, gst::ErrorMessage>;
}

/// How the base class calls a subclass's [`RecordingSinkImpl::plan`].
type PlanFn = fn(&RecordingSink) -> Result<Plan, gst::ErrorMessage>;

/// The class struct: the base's, plus the subclass's [`RecordingSinkImpl::plan`].
#[repr(C)]
pub struct Class {
    parent: gst_base::ffi::GstBaseSinkClass,
    /// Set for every subclass in `class_init`; `None` only in the abstract class itself.
    plan: Option<PlanFn>,
}

// SAFETY: `Class` starts with the parent's class struct and is `repr(C)`.
unsafe impl ClassStruct for Class {
    type Type = imp::RecordingSink;
}

// SAFETY: chains up to `BaseSink`'s class init and only sets a field of our own.
unsafe impl<T: RecordingSinkImpl> IsSubclassable<T> for RecordingSink {
    fn class_init(class: &mut glib::Class<Self>) {
        Self::parent_class_init::<T>(class);
        class.as_mut().plan = Some(|obj| {
            let obj = obj.downcast_ref::<T::Type>().expect("a recording sink of this subclass");
            obj.imp().plan()
        });
    }
}
