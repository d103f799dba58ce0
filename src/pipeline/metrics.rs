//! Prometheus metrics of a run, kept as it goes (cheap atomics) and encoded in the
//! Prometheus text format on request (`segsynth run --metrics`). The names:
//!
//! Every series but `segsynth_rtsp_clients` carries `stream` (`main` for a run of one):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `segsynth_frames_total` | counter | `stream`, `direction` = `in` (read from the input) / `out` (written) |
//! | `segsynth_dropped_frames_total` | counter | `stream`, `reason` = `stage_queue` (live backpressure) |
//! | `segsynth_added_latency_seconds` | histogram | `stream`; appsink to appsrc |
//! | `segsynth_stage_seconds` | histogram | `stream`, `stage` = `segment` / `composite` / `output` / `synth` |
//! | `segsynth_synth_layer_reuses_total` | counter | `stream`; live frames whose GAN content held still or slowed because a layer was late |
//! | `segsynth_rtsp_clients` | gauge | RTSP sessions being served, all servers of the process |
//! | `segsynth_input_reconnects_total` | counter | `stream`; live input reconnects |
//! | `segsynth_webrtc_peers` | gauge | `stream`, `role` = `publisher` (WHIP) / `player` (WHEP) connected |
//! | `segsynth_provider_info` | gauge (1) | `stream`, `provider`, `model`, `pixels` |

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Stream {
    pub stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Direction {
    pub stream: String,
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub stream: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Stage {
    pub stream: String,
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerRole {
    pub stream: String,
    pub role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderInfo {
    pub stream: String,
    pub provider: String,
    pub model: String,
    pub pixels: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The stream label of a process with one stream.
pub const MAIN_STREAM: &str = "main";

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

/// The metric families of a process, one registry for all its streams.
struct Families {
    registry: Registry,
    frames: Family<Direction, Counter>,
    dropped: Family<Reason, Counter>,
    added_latency: Histograms<Stream>,
    stages: Histograms<Stage>,
    layer_reuses: Family<Stream, Counter>,
    rtsp_clients: Gauge,
    input_reconnects: Family<Stream, Counter>,
    webrtc_peers: Family<PeerRole, Gauge>,
    provider: Family<ProviderInfo, Gauge>,
}

impl Families {
    fn new() -> Families {
        let mut r = Registry::with_prefix("segsynth");
        let f = Families {
            frames: Family::default(),
            dropped: Family::default(),
            added_latency: Family::new_with_constructor(seconds),
            stages: Family::new_with_constructor(seconds),
            layer_reuses: Family::default(),
            rtsp_clients: Gauge::default(),
            input_reconnects: Family::default(),
            webrtc_peers: Family::default(),
            provider: Family::default(),
            registry: Registry::default(),
        };
        let help = "Frames read from the input (in) and written (out)";
        r.register("frames", help, f.frames.clone());
        r.register(
            "dropped_frames",
            "Frames dropped, by reason",
            f.dropped.clone(),
        );
        let help =
            "Time a frame spends in segsynth, from the input's appsink to the output's appsrc";
        r.register_with_unit(
            "added_latency",
            help,
            Unit::Seconds,
            f.added_latency.clone(),
        );
        let help = "Time of one frame (one layer for synth) in each stage";
        r.register_with_unit("stage", help, Unit::Seconds, f.stages.clone());
        let help = "Live frames whose GAN content held still or slowed because a layer was late";
        r.register("synth_layer_reuses", help, f.layer_reuses.clone());
        let help = "RTSP sessions being served (all mounts of the process)";
        r.register("rtsp_clients", help, f.rtsp_clients.clone());
        let help = "Times the live input was lost and reconnected";
        r.register("input_reconnects", help, f.input_reconnects.clone());
        let help = "WHIP publishers and WHEP players connected";
        r.register("webrtc_peers", help, f.webrtc_peers.clone());
        let help = "The segmentation model, its ONNX Runtime execution provider and where the per-pixel steps run (value 1)";
        r.register("provider_info", help, f.provider.clone());
        Families { registry: r, ..f }
    }
}

/// One stream's view of the process's metrics: every series it counts carries its
/// `stream` label. `Metrics::default()` is a process of one stream, `main`; `stream`
/// adds another to the same registry.
#[derive(Clone)]
pub struct Metrics {
    families: Arc<Families>,
    stream: String,
    frames_in: Counter,
    frames_out: Counter,
    added_latency: Histogram,
    layer_reuses: Counter,
    /// RTSP sessions of the process (one gauge, whichever stream serves them).
    pub rtsp_clients: Gauge,
    pub input_reconnects: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(MAIN_STREAM)
    }
}

impl Metrics {
    /// A process's metrics, its first stream `name`.
    pub fn new(name: &str) -> Metrics {
        Metrics::in_families(Arc::new(Families::new()), name)
    }

    /// Another stream's view, counting into the same registry.
    pub fn stream(&self, name: &str) -> Metrics {
        Metrics::in_families(Arc::clone(&self.families), name)
    }

    fn in_families(families: Arc<Families>, stream: &str) -> Metrics {
        let f = &families;
        let label = || stream.to_string();
        let frames = |direction| {
            f.frames
                .get_or_create(&Direction {
                    stream: label(),
                    direction,
                })
                .clone()
        };
        let (frames_in, frames_out) = (frames("in"), frames("out"));
        for reason in DROP_REASONS {
            let _ = f.dropped.get_or_create(&Reason {
                stream: label(),
                reason,
            });
        }
        for stage in STAGES {
            let _ = f.stages.get_or_create(&Stage {
                stream: label(),
                stage,
            });
        }
        for role in PEER_ROLES {
            let _ = f.webrtc_peers.get_or_create(&PeerRole {
                stream: label(),
                role,
            });
        }
        let one = Stream { stream: label() };
        let added_latency = f.added_latency.get_or_create(&one).clone();
        let layer_reuses = f.layer_reuses.get_or_create(&one).clone();
        let input_reconnects = f.input_reconnects.get_or_create(&one).clone();
        Metrics {
            frames_in,
            frames_out,
            added_latency,
            layer_reuses,
            rtsp_clients: f.rtsp_clients.clone(),
            input_reconnects,
            stream: stream.to_string(),
            families,
        }
    }

    /// The stream label of this view.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    pub fn frame_in(&self) {
        self.frames_in.inc();
    }

    pub fn frame_out(&self, added: std::time::Duration) {
        self.frames_out.inc();
        self.added_latency.observe(added.as_secs_f64());
    }

    pub fn dropped(&self, reason: &'static str) {
        let stream = self.stream.clone();
        self.families
            .dropped
            .get_or_create(&Reason { stream, reason })
            .inc();
    }

    /// The histogram of one stage (a handle: clones observe into the same one).
    pub fn stage(&self, stage: &'static str) -> Histogram {
        let stream = self.stream.clone();
        self.families
            .stages
            .get_or_create(&Stage { stream, stage })
            .clone()
    }

    /// How many peers of `role` (`publisher`, `player`) are connected now.
    pub fn webrtc_peers(&self, role: &'static str, n: i64) {
        let stream = self.stream.clone();
        self.families
            .webrtc_peers
            .get_or_create(&PeerRole { stream, role })
            .set(n);
    }

    pub fn layer_reuses(&self, n: u64) {
        self.layer_reuses.inc_by(n);
    }

    pub fn provider(&self, provider: &str, model: &str, pixels: &str) {
        self.families
            .provider
            .get_or_create(&ProviderInfo {
                stream: self.stream.clone(),
                provider: provider.into(),
                model: model.into(),
                pixels: pixels.into(),
            })
            .set(1);
    }

    /// The Prometheus text exposition of everything so far, every stream's.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.families.registry);
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
            "segsynth_frames_total{stream=\"main\",direction=\"in\"} 0".to_string(),
            "segsynth_frames_total{stream=\"main\",direction=\"out\"} 0".to_string(),
            "segsynth_dropped_frames_total{stream=\"main\",reason=\"stage_queue\"} 0".to_string(),
            "segsynth_synth_layer_reuses_total{stream=\"main\"} 0".to_string(),
            "segsynth_input_reconnects_total{stream=\"main\"} 0".to_string(),
            "segsynth_rtsp_clients 0".to_string(),
        ];
        lines.extend(
            STAGES.map(|s| {
                format!("segsynth_stage_seconds_count{{stream=\"main\",stage=\"{s}\"}} 0")
            }),
        );
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
            "segsynth_frames_total{stream=\"main\",direction=\"in\"} 2",
            "segsynth_frames_total{stream=\"main\",direction=\"out\"} 1",
            "segsynth_dropped_frames_total{stream=\"main\",reason=\"stage_queue\"} 1",
            "segsynth_added_latency_seconds_count{stream=\"main\"} 1",
            "segsynth_stage_seconds_count{stream=\"main\",stage=\"segment\"} 1",
            "segsynth_synth_layer_reuses_total{stream=\"main\"} 3",
            "segsynth_rtsp_clients 2",
            "segsynth_input_reconnects_total{stream=\"main\"} 1",
            "segsynth_provider_info{stream=\"main\",provider=\"CPUExecutionProvider\",model=\"selfie\",pixels=\"native kernels\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn streams_share_one_registry_each_family_once() {
        let main = Metrics::default();
        let door = main.stream("door");
        door.frame_in();
        door.dropped("stage_queue");
        main.frame_in();
        main.frame_in();
        let text = door.encode();
        assert_eq!(text, main.encode());
        for line in [
            "segsynth_frames_total{stream=\"main\",direction=\"in\"} 2",
            "segsynth_frames_total{stream=\"door\",direction=\"in\"} 1",
            "segsynth_dropped_frames_total{stream=\"door\",reason=\"stage_queue\"} 1",
            "segsynth_dropped_frames_total{stream=\"main\",reason=\"stage_queue\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!(text.matches("# TYPE segsynth_frames counter").count(), 1);
    }
}
