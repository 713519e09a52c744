//! Simulcast layer selection: which of up to three layers a subscriber gets, switching only
//! at keyframes of the layer switched to.

/// What the selector knows about one layer (index 0 is the lowest).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LayerInfo {
    /// Measured bitrate of the layer; 0 means the layer is not arriving.
    pub bitrate_bps: u64,
    /// Frame height, if known (0 when unknown).
    pub height: u32,
}

/// Decision for one incoming packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorAction {
    /// Forward it; `switched` is true for the keyframe that starts a new layer.
    Forward {
        /// First packet of a newly selected layer.
        switched: bool,
    },
    /// Not for this subscriber.
    Drop,
}

/// Upgrade only when the estimate exceeds the layer's bitrate by this factor.
const UPGRADE_HEADROOM: f64 = 1.15;

/// Per-subscriber layer state for one simulcast track.
#[derive(Debug, Clone, Default)]
pub struct LayerSelector {
    current: Option<usize>,
    target: usize,
    max_height: Option<u32>,
    bandwidth_bps: Option<u64>,
}

impl LayerSelector {
    /// A selector that starts on the lowest layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The layer being forwarded now.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// The layer the selector wants to reach.
    pub fn target(&self) -> usize {
        self.target
    }

    /// The subscriber asked for at most this frame height (`None`: no limit).
    pub fn set_max_height(&mut self, height: Option<u32>) {
        self.max_height = height;
    }

    /// The subscriber's estimated available bandwidth for this track.
    pub fn set_bandwidth(&mut self, bps: Option<u64>) {
        self.bandwidth_bps = bps;
    }

    /// Recomputes the target from the layers' current state. Returns true when the target
    /// changed and a keyframe on the new target is needed.
    pub fn update(&mut self, layers: &[LayerInfo]) -> bool {
        let new = choose_target(layers, self.bandwidth_bps, self.max_height, self.current);
        let changed = new != self.target;
        self.target = new;
        self.current != Some(new) && (changed || self.current.is_none())
    }

    /// Whether the selector waits for a keyframe on its target layer.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.current != Some(self.target)
    }

    /// Decides for a packet of `layer` whose payload starts a keyframe or not.
    pub fn on_packet(&mut self, layer: usize, keyframe: bool) -> SelectorAction {
        if layer == self.target && (self.current == Some(layer) || keyframe) {
            let switched = self.current != Some(layer);
            self.current = Some(layer);
            return SelectorAction::Forward { switched };
        }
        if self.current == Some(layer) {
            // Keep the old layer until the target's keyframe arrives.
            return SelectorAction::Forward { switched: false };
        }
        SelectorAction::Drop
    }
}

/// The layer to aim for: the lowest one tall enough for the requested size, lowered while
/// its bitrate exceeds the bandwidth estimate; layers not arriving are skipped.
pub fn choose_target(
    layers: &[LayerInfo],
    bandwidth_bps: Option<u64>,
    max_height: Option<u32>,
    current: Option<usize>,
) -> usize {
    let active: Vec<usize> = (0..layers.len()).filter(|&i| layers[i].bitrate_bps > 0).collect();
    let Some(&lowest) = active.first() else {
        return current.unwrap_or(0);
    };
    let mut best = lowest;
    for &i in &active {
        let l = layers[i];
        if let Some(bw) = bandwidth_bps {
            let need = if current.is_some_and(|c| i > c) {
                (l.bitrate_bps as f64 * UPGRADE_HEADROOM) as u64
            } else {
                l.bitrate_bps
            };
            if need > bw {
                break;
            }
        }
        best = i;
        if let Some(h) = max_height
            && l.height > 0
            && l.height >= h
        {
            break;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> Vec<LayerInfo> {
        vec![
            LayerInfo { bitrate_bps: 150_000, height: 180 },
            LayerInfo { bitrate_bps: 500_000, height: 360 },
            LayerInfo { bitrate_bps: 1_500_000, height: 720 },
        ]
    }

    #[test]
    fn target_follows_bandwidth_and_size() {
        let l = layers();
        assert_eq!(choose_target(&l, None, None, None), 2);
        assert_eq!(choose_target(&l, Some(600_000), None, None), 1);
        assert_eq!(choose_target(&l, Some(100_000), None, None), 0, "never below the lowest");
        assert_eq!(choose_target(&l, None, Some(300), None), 1);
        assert_eq!(choose_target(&l, None, Some(180), None), 0);
        // Upgrade needs headroom, staying does not.
        assert_eq!(choose_target(&l, Some(1_600_000), None, Some(1)), 1);
        assert_eq!(choose_target(&l, Some(1_600_000), None, Some(2)), 2);
        // A layer that is not arriving is skipped.
        let mut l2 = l.clone();
        l2[2].bitrate_bps = 0;
        assert_eq!(choose_target(&l2, None, None, None), 1);
    }

    #[test]
    fn switches_only_at_keyframes() {
        let mut s = LayerSelector::new();
        s.set_bandwidth(Some(200_000));
        assert!(s.update(&layers()));
        assert_eq!(s.target(), 0);
        // Nothing is forwarded until the first keyframe of the target.
        assert_eq!(s.on_packet(0, false), SelectorAction::Drop);
        assert_eq!(s.on_packet(0, true), SelectorAction::Forward { switched: true });
        assert_eq!(s.on_packet(0, false), SelectorAction::Forward { switched: false });
        assert_eq!(s.on_packet(1, true), SelectorAction::Drop);
        // Bandwidth rises: target 2, old layer continues until layer 2's keyframe.
        s.set_bandwidth(Some(5_000_000));
        assert!(s.update(&layers()));
        assert!(s.waiting_for_keyframe());
        assert_eq!(s.on_packet(2, false), SelectorAction::Drop);
        assert_eq!(s.on_packet(0, false), SelectorAction::Forward { switched: false });
        assert_eq!(s.on_packet(2, true), SelectorAction::Forward { switched: true });
        assert_eq!(s.on_packet(0, false), SelectorAction::Drop);
        assert_eq!(s.current(), Some(2));
        // Unchanged inputs: no new keyframe needed.
        assert!(!s.update(&layers()));
    }
}
