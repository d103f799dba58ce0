//! Prometheus metrics of a run, kept as it goes (cheap atomics) and encoded in the
//! Prometheus text format on request (`segsynth run --metrics`). The names:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `segsynth_frames_total` | counter | `direction` = `in` (read from the input) / `out` (written) |
//! | `segsynth_dropped_frames_total` | counter | `reason` = `stage_queue` (live backpressure) |
//! | `segsynth_added_latency_seconds` | histogram | appsink to appsrc |
//! | `segsynth_stage_seconds` | histogram | `stage` = `segment` / `composite` / `output` / `synth` |
//! | `segsynth_synth_layer_reuses_total` | counter | live frames whose GAN content held still or slowed because a layer was late |
//! | `segsynth_rtsp_clients` | gauge | RTSP sessions being served |
//! | `segsynth_input_reconnects_total` | counter | live input reconnects |
//! | `segsynth_webrtc_peers` | gauge | `role` = `publisher` (WHIP) / `player` (WHEP) connected |
//! | `segsynth_provider_info` | gauge (1) | `provider`, `model`, `pixels` |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Direction {
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Stage {
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerRole {
    pub role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderInfo {
    pub provider: String,
    pub model: String,
    pub pixels: String,
}

type HistogramFamily = Family<Stage, Histogram, fn() -> Histogram>;

/// Every label value the labelled metrics can take. Each series exists, at 0, from the
/// first scrape (Prometheus' guidance: `rate()` and alerts see a series before its first
/// event).
pub const DIRECTIONS: [&str; 2] = ["in", "out"];
pub const DROP_REASONS: [&str; 1] = ["stage_queue"];
pub const STAGES: [&str; 4] = ["segment", "composite", "output", "synth"];
pub const PEER_ROLES: [&str; 2] = ["publisher", "player"];

/// 0.5 ms to about 4 s, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

pub struct Metrics {
    registry: Registry,
    frames: Family<Direction, Counter>,
    dropped: Family<Reason, Counter>,
    added_latency: Histogram,
    stages: HistogramFamily,
    layer_reuses: Counter,
    pub rtsp_clients: Gauge,
    pub input_reconnects: Counter,
    webrtc_peers: Family<PeerRole, Gauge>,
    provider: Family<ProviderInfo, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("segsynth");
        let frames = Family::<Direction, Counter>::default();
        registry.register(
            "frames",
            "Frames read from the input (in) and written (out)",
            frames.clone(),
        );
        let dropped = Family::<Reason, Counter>::default();
        registry.register(
            "dropped_frames",
            "Frames dropped, by reason",
            dropped.clone(),
        );
        let added_latency = seconds();
        registry.register_with_unit(
            "added_latency",
            "Time a frame spends in segsynth, from the input's appsink to the output's appsrc",
            Unit::Seconds,
            added_latency.clone(),
        );
        let stages: HistogramFamily = Family::new_with_constructor(seconds);
        registry.register_with_unit(
            "stage",
            "Time of one frame (one layer for synth) in each stage",
            Unit::Seconds,
            stages.clone(),
        );
        let layer_reuses = Counter::default();
        registry.register(
            "synth_layer_reuses",
            "Live frames whose GAN content held still or slowed because a layer was late",
            layer_reuses.clone(),
        );
        let rtsp_clients = Gauge::default();
        registry.register(
            "rtsp_clients",
            "RTSP sessions being served",
            rtsp_clients.clone(),
        );
        let input_reconnects = Counter::default();
        registry.register(
            "input_reconnects",
            "Times the live input was lost and reconnected",
            input_reconnects.clone(),
        );
        let webrtc_peers = Family::<PeerRole, Gauge>::default();
        registry.register(
            "webrtc_peers",
            "WHIP publishers and WHEP players connected",
            webrtc_peers.clone(),
        );
        for role in PEER_ROLES {
            let _ = webrtc_peers.get_or_create(&PeerRole { role });
        }
        let provider = Family::<ProviderInfo, Gauge>::default();
        registry.register(
            "provider_info",
            "The segmentation model, its ONNX Runtime execution provider and where the per-pixel steps run (value 1)",
            provider.clone(),
        );
        for direction in DIRECTIONS {
            let _ = frames.get_or_create(&Direction { direction });
        }
        for reason in DROP_REASONS {
            let _ = dropped.get_or_create(&Reason { reason });
        }
        for stage in STAGES {
            let _ = stages.get_or_create(&Stage { stage });
        }
        Metrics {
            registry,
            frames,
            dropped,
            added_latency,
            stages,
            layer_reuses,
            rtsp_clients,
            input_reconnects,
            webrtc_peers,
            provider,
        }
    }
}

impl Metrics {
    pub fn frame_in(&self) {
        self.frames
            .get_or_create(&Direction { direction: "in" })
            .inc();
    }

    pub fn frame_out(&self, added: std::time::Duration) {
        self.frames
            .get_or_create(&Direction { direction: "out" })
            .inc();
        self.added_latency.observe(added.as_secs_f64());
    }

    pub fn dropped(&self, reason: &'static str) {
        self.dropped.get_or_create(&Reason { reason }).inc();
    }

    /// The histogram of one stage (a handle: clones observe into the same one).
    pub fn stage(&self, stage: &'static str) -> Histogram {
        self.stages.get_or_create(&Stage { stage }).clone()
    }

    /// How many peers of `role` (`publisher`, `player`) are connected now.
    pub fn webrtc_peers(&self, role: &'static str, n: i64) {
        self.webrtc_peers.get_or_create(&PeerRole { role }).set(n);
    }

    pub fn layer_reuses(&self, n: u64) {
        self.layer_reuses.inc_by(n);
    }

    pub fn provider(&self, provider: &str, model: &str, pixels: &str) {
        self.provider
            .get_or_create(&ProviderInfo {
                provider: provider.into(),
                model: model.into(),
                pixels: pixels.into(),
            })
            .set(1);
    }

    /// The Prometheus text exposition of everything so far.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_labelled_series_exists_at_zero_from_the_start() {
        let text = Metrics::default().encode();
        let mut lines = vec![
            "segsynth_frames_total{direction=\"in\"} 0".to_string(),
            "segsynth_frames_total{direction=\"out\"} 0".to_string(),
            "segsynth_dropped_frames_total{reason=\"stage_queue\"} 0".to_string(),
            "segsynth_synth_layer_reuses_total 0".to_string(),
            "segsynth_input_reconnects_total 0".to_string(),
            "segsynth_rtsp_clients 0".to_string(),
        ];
        lines.extend(STAGES.map(|s| format!("segsynth_stage_seconds_count{{stage=\"{s}\"}} 0")));
        for line in lines {
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn encodes_the_documented_names() {
        let m = Metrics::default();
        m.frame_in();
        m.frame_in();
        m.frame_out(std::time::Duration::from_millis(12));
        m.dropped("stage_queue");
        m.stage("segment").observe(0.004);
        m.layer_reuses(3);
        m.rtsp_clients.set(2);
        m.input_reconnects.inc();
        m.provider("CPUExecutionProvider", "selfie", "native kernels");
        let text = m.encode();
        for line in [
            "segsynth_frames_total{direction=\"in\"} 2",
            "segsynth_frames_total{direction=\"out\"} 1",
            "segsynth_dropped_frames_total{reason=\"stage_queue\"} 1",
            "segsynth_added_latency_seconds_count 1",
            "segsynth_stage_seconds_count{stage=\"segment\"} 1",
            "segsynth_synth_layer_reuses_total 3",
            "segsynth_rtsp_clients 2",
            "segsynth_input_reconnects_total 1",
            "segsynth_provider_info{provider=\"CPUExecutionProvider\",model=\"selfie\",pixels=\"native kernels\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
