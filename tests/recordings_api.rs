//! Recording a room through the REST API of the real `tessera serve` (local storage, the
//! embedded default, and S3): start, swap the layout, stop, and the file plays; a kill or a
//! SIGTERM mid-recording; webhooks. Bad requests get the documented errors while the
//! recording goes on. One module per concern, in `recordings/`.

mod common;
mod recordings;
