//! Command-line arguments as the user typed them (validated without I/O).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use segsynth::content::ContentSpec;
use segsynth::imgproc::mask::{DEFAULT_FEATHER, DEFAULT_TEMPORAL};
use segsynth::io::encode::{DEFAULT_CRF, DEFAULT_PRESET};
use segsynth::options::{Batch, Device, EdgeBand, ModelEvery, Pixels, Refine};
use segsynth::pipeline::synth::{DEFAULT_BUDGET_MS, DEFAULT_PERIOD, DEFAULT_SCALE, DEFAULT_SEED};

#[derive(Parser, Debug)]
#[command(
    name = "segsynth",
    version,
    about = "Segment video, synthesize content with a GAN, composite it over chosen classes"
)]
pub struct Cli {
    /// Log level (error, warn, info, debug).
    #[arg(long, global = true, default_value = "warn")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Process a video file: same length, timestamps and audio, chosen classes replaced.
    Process(ProcessArgs),
    /// Live: camera / test / RTSP / file input to any mix of window, virtual camera, RTSP and recording.
    Run(RunArgs),
    /// Live webcam overlay in a browser: serves a page (WebRTC camera in, processed video back).
    Web(WebArgs),
    /// Benchmark the file job against a GStreamer-only transcode of the same clip.
    Bench(BenchArgs),
    /// List the available segmentation models and generators.
    Models,
    /// Make a test clip: a photo with a slow pan/zoom, plus a sine tone (H.264/AAC).
    MakeClip(MakeClipArgs),
}

#[derive(Args, Debug)]
pub struct MakeClipArgs {
    /// Output clip (.mp4 or .mkv).
    pub output: PathBuf,
    /// Photo to animate (PNG/JPEG).
    #[arg(long)]
    pub photo: PathBuf,
    #[arg(long, default_value_t = 1280)]
    pub width: u32,
    #[arg(long, default_value_t = 720)]
    pub height: u32,
    #[arg(long, default_value_t = 90)]
    pub frames: u32,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Leave out the audio track.
    #[arg(long)]
    pub no_audio: bool,
    /// Variable frame rate (durations alternate 1/fps and 3/fps).
    #[arg(long)]
    pub vfr: bool,
    /// The photo unmoved in every frame (no pan or zoom).
    #[arg(long)]
    pub still: bool,
    /// Sensor-like noise, its standard deviation in grey levels (0: a clean photo)
    #[arg(long, default_value_t = 0.0)]
    pub grain: f32,
    /// Replace the output if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Args, Debug, Clone)]
pub struct Processing {
    /// Classes whose pixels get the content (names from the model manifest).
    #[arg(long, value_delimiter = ',', default_value = "background")]
    pub classes: Vec<String>,
    /// Content: blur[:radius], color:#RRGGBB, image:<path>, mask, gan:<name|path>; or <class>=<kind> (repeatable).
    #[arg(long = "content")]
    pub content: Vec<ContentSpec>,
    /// Segmentation model: a name in models/ or a path to a .toml manifest / .onnx file.
    #[arg(long, default_value = segsynth::job::DEFAULT_MODEL)]
    pub model: String,
    /// Execution device for the ONNX stages: auto, cpu, cuda or tensorrt.
    #[arg(long, default_value_t = Device::Auto)]
    pub device: Device,
    /// Where per-pixel steps run: ONNX graphs beside the model (graph), Rust kernels (native),
    /// or graphs only when the model is on a GPU (auto).
    #[arg(long, default_value_t = Pixels::Auto)]
    pub pixels: Pixels,
    /// ONNX Runtime intra-op threads for segmentation (1 leaves the other core to the codec).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// ONNX Runtime intra-op threads for the GAN generator.
    #[arg(long, default_value_t = 1)]
    pub gan_threads: usize,
    /// Mask feather radius in frame pixels.
    #[arg(long, default_value_t = DEFAULT_FEATHER)]
    pub feather: f32,
    /// Temporal smoothing of the mask, 0 (off) to 0.95.
    #[arg(long, default_value_t = DEFAULT_TEMPORAL)]
    pub temporal: f32,
    /// Soft edge band: alpha below LO is 0, above HI is 1, smooth in between ("0,1" keeps the model's raw probabilities).
    #[arg(long, default_value_t = EdgeBand::DEFAULT)]
    pub edge: EdgeBand,
    /// How the mask reaches frame size: `guided` lays its edges on the frame's own edges
    /// (a guided filter on the luma), `off` is a plain bilinear upsample.
    #[arg(long, default_value_t = Refine::Guided)]
    pub refine: Refine,
    /// How often the segmentation model runs: `auto` when the picture has changed since it
    /// last ran (at least every 3rd frame), `N` on every Nth frame (1: every frame). The
    /// frames between reuse its scores, laid on their own edges by the refine.
    #[arg(long, default_value_t = ModelEvery::Auto)]
    pub model_every: ModelEvery,
    /// Frames of several streams in one segmentation call: `auto` (on a GPU, up to 64; off
    /// on the CPU, where it is no faster), `off`, or at most N.
    #[arg(long, default_value_t = Batch::Auto)]
    pub batch: Batch,
    /// The longest a frame waits for other streams' frames to join its batch.
    #[arg(long, default_value_t = 4)]
    pub batch_window_ms: u64,
    /// Synthesis resolution as a fraction of the frame (1 = full resolution).
    #[arg(long, default_value_t = DEFAULT_SCALE)]
    pub synth_scale: f32,
    /// Seconds between GAN noise keyframes (the animation period).
    #[arg(long, default_value_t = DEFAULT_PERIOD)]
    pub synth_period: f32,
    /// Seed of the GAN noise walk; the same seed gives the same content.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Longest a frame waits for a fresh GAN layer before reusing the last one (ms).
    #[arg(long, default_value_t = DEFAULT_BUDGET_MS)]
    pub synth_budget_ms: u64,
    /// x264 constant rate factor, as ffmpeg's -crf: constant perceived quality, lower is
    /// better and bigger (0-50).
    #[arg(long, default_value_t = DEFAULT_CRF)]
    pub crf: u32,
    /// x264 constant quantizer instead of CRF, as ffmpeg's -qp (0-50).
    #[arg(long)]
    pub qp: Option<u32>,
    /// x264 speed preset.
    #[arg(long, default_value = DEFAULT_PRESET)]
    pub preset: String,
}

#[derive(Args, Debug)]
pub struct ProcessArgs {
    /// Input video files (anything GStreamer decodes).
    #[arg(required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Output file: .mp4 (default container) or .mkv. With several inputs (or a path
    /// ending in `/`), a folder that gets `<input stem>.mp4` for each input.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar or periodic progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Files written at the same time when there are several inputs; they share one
    /// session per model. 1 (the default) gives byte-reproducible files; with more, x264
    /// instances encoding side by side in one process may round a few pixels differently.
    #[arg(long, short = 'j', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    #[command(flatten)]
    pub processing: Processing,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Frames in the generated clip.
    #[arg(long, default_value_t = 300)]
    pub frames: u32,
    #[arg(long, default_value_t = 1280)]
    pub width: u32,
    #[arg(long, default_value_t = 720)]
    pub height: u32,
    /// Frame rate of the generated clip.
    #[arg(long, default_value_t = 30, conflicts_with = "clip")]
    pub fps: u32,
    /// Sensor-like noise in the generated clip, its standard deviation in grey levels
    /// (camera footage costs the encoder more than a clean photo pan).
    #[arg(long, default_value_t = 0.0, conflicts_with = "clip")]
    pub grain: f32,
    /// Use this clip instead of generating one.
    #[arg(long)]
    pub clip: Option<PathBuf>,
    /// Keep the generated clip and outputs in this folder (default target/bench).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Skip the GAN scenarios (and the generated-content motion table).
    #[arg(long)]
    pub no_gan: bool,
    /// Only the generated-content table: every shipped generator on a still landscape,
    /// its motion in the decoded output, and whether a run under load decodes identical.
    #[arg(long, conflicts_with = "no_gan")]
    pub motion_only: bool,
    /// Rounds; each runs the transcode and then every scenario, and the ratio is the
    /// median over rounds of the scenario against the transcode of its own round.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
    /// Also time the Python peer of the blur job (scripts/python_peer.py) in every round,
    /// run by this interpreter (e.g. .venv/bin/python), and print segsynth's speed against it.
    #[arg(long, value_name = "PYTHON", conflicts_with = "motion_only")]
    pub peer: Option<PathBuf>,
    #[command(flatten)]
    pub processing: Processing,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A pipeline preset (pipelines/*.toml); command-line options override it.
    pub config: Option<PathBuf>,
    /// Input: test:, v4l2:/dev/videoN, rtsp://..., or a file path.
    #[arg(short, long)]
    pub input: Option<String>,
    /// Output (repeatable): a file path, display:, v4l2:/dev/videoN, rtsp://ADDR:PORT/PATH or rtsps://ADDR:PORT/PATH (served), rtsp-publish://[USER:PASS@]HOST:PORT/PATH.
    #[arg(short, long = "output")]
    pub outputs: Vec<String>,
    /// Processing width (input is scaled to it).
    #[arg(long)]
    pub width: Option<u32>,
    #[arg(long)]
    pub height: Option<u32>,
    /// Maximum frame rate.
    #[arg(long)]
    pub fps: Option<u32>,
    /// Pace file inputs in real time.
    #[arg(long)]
    pub realtime: bool,
    /// User for the input camera (rtsp:// or rtsps:// input); or give it in the URL.
    #[arg(long)]
    pub input_user: Option<String>,
    /// Password for the input camera. Visible to `ps`: prefer --input-password-file or
    /// the SEGSYNTH_INPUT_PASSWORD environment variable.
    #[arg(long)]
    pub input_password: Option<String>,
    /// File holding the input camera's password (first line).
    #[arg(long)]
    pub input_password_file: Option<PathBuf>,
    /// User that viewers of the served stream must give (basic auth).
    #[arg(long)]
    pub rtsp_user: Option<String>,
    /// Password for the served stream. Visible to `ps`: prefer --rtsp-password-file or
    /// the SEGSYNTH_RTSP_PASSWORD environment variable.
    #[arg(long)]
    pub rtsp_password: Option<String>,
    /// File holding the served stream's password (first line).
    #[arg(long)]
    pub rtsp_password_file: Option<PathBuf>,
    /// Serve without authentication on an address other than loopback (explicit opt-in).
    #[arg(long)]
    pub rtsp_allow_anonymous: bool,
    /// Most clients the RTSP server plays to at once; the next is refused (503).
    #[arg(long)]
    pub rtsp_max_clients: Option<u32>,
    /// Seconds of silence after which a client's session is reaped.
    #[arg(long)]
    pub rtsp_session_timeout: Option<u32>,
    /// RTSP input transport: tcp or udp.
    #[arg(long)]
    pub rtsp_transport: Option<String>,
    /// Video sink for `-o display:` (e.g. ximagesink, glimagesink, waylandsink) instead of
    /// the choice for the session (Wayland, then X: xvimagesink, ximagesink, glimagesink).
    #[arg(long)]
    pub display_sink: Option<String>,
    /// Replace recording files that exist.
    #[arg(long)]
    pub overwrite: bool,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds between live statistics lines (0 = none).
    #[arg(long, default_value_t = 5.0)]
    pub stats_every: f64,
    /// Serve Prometheus metrics at http://ADDR/metrics: PORT (on 127.0.0.1) or HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Allow --metrics on an address other than loopback (the metrics have no password).
    #[arg(long)]
    pub metrics_allow_remote: bool,
    #[command(flatten)]
    pub served: Served,
    /// Most WHEP players at once per whep:// output; the next is refused (503).
    #[arg(long, default_value_t = 8)]
    pub max_sessions: u32,
    #[command(flatten)]
    pub processing: Processing,
}

#[derive(Args, Debug)]
pub struct WebArgs {
    /// Address to serve the page and its API on (HOST:PORT; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub served: Served,
    /// Serve beyond loopback without a token (explicit opt-in).
    #[arg(long)]
    pub allow_anonymous: bool,
    /// Most sessions at once; the next is refused (503).
    #[arg(long, default_value_t = 4)]
    pub max_sessions: u32,
    /// Processing width (the camera is scaled to it, borders keep its aspect).
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Frame rate the processed video is encoded at (the camera's own rate comes through).
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    #[command(flatten)]
    pub processing: Processing,
}

/// What protects what segsynth serves: TLS for rtsps://, whip://, whep:// and the web page,
/// and the bearer token of the WebRTC endpoints (`run` and `web` share these flags).
#[derive(Args, Debug, Clone, Default)]
pub struct Served {
    /// PEM certificate: rtsps:// outputs, and HTTPS for whip://, whep:// and `web` (browsers
    /// give the camera only to HTTPS pages or localhost).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Bearer token (WHIP's `Authorization: Bearer`) for `web` sessions and whip:// / whep://
    /// endpoints. Visible to `ps`: prefer --token-file or SEGSYNTH_WEB_TOKEN.
    #[arg(long)]
    pub token: Option<String>,
    /// File holding the token (first line).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}
