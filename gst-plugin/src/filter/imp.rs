//! The `segsynth` element: a `VideoFilter` on I420 that works in place.
//!
//! - `Settings` (behind a mutex) hold the properties, in the CLI's syntax.
//! - `State` is made in `start`, learns the video format in `set_info` (again on a
//!   caps change) and builds the stages (model, segmenter, compositor, synth threads)
//!   on the first frame, from the settings of that moment.
//! - A property change while PLAYING is picked up on the next frame: a new class ->
//!   content map or mask setting rebuilds only the map (the model stays loaded); a new
//!   model, device or thread count rebuilds everything.
//! - Segmentation and compositing run in the streaming thread (simplest; a frame's
//!   masks are always its own). The element reports the slowest recent frame as its
//!   latency and posts a latency message when that grows.
//! - Any bad value is an element error on the bus naming the property, never a panic.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_base::subclass::prelude::*;
use gstreamer_video as gst_video;
use gstreamer_video::subclass::prelude::*;

use segsynth::content::{ContentSpec, Entry, selections};
use segsynth::frame::Frame;
use segsynth::imgproc::mask::{DEFAULT_FEATHER, DEFAULT_TEMPORAL, MaskParams};
use segsynth::infer::{Model, SessionOptions};
use segsynth::io::frames::{read_frame, write_planes};
use segsynth::job::{check_content, models_dir, open_generators, start_content};
use segsynth::model::{Manifest, resolve};
use segsynth::options::{Device, EdgeBand, ModelEvery, Pixels, Refine};
use segsynth::pipeline::composite::Compositor;
use segsynth::pipeline::segment::Segmenter;
use segsynth::pipeline::synth::{DEFAULT_SCALE, DEFAULT_SEED, SynthParams, SynthStage};

/// The element's debug category (`GST_DEBUG=segsynth:5`).
static CAT: std::sync::LazyLock<gst::DebugCategory> = std::sync::LazyLock::new(|| {
    gst::DebugCategory::new(
        "segsynth",
        gst::DebugColorFlags::empty(),
        Some("segment, synthesize, composite"),
    )
});

#[derive(Clone, Debug, PartialEq)]
struct Settings {
    model: String,
    classes: String,
    content: String,
    device: super::Device,
    pixels: super::Pixels,
    threads: u32,
    edge: String,
    feather: f32,
    temporal: f32,
    refine: super::Refine,
    model_every: String,
    synth_scale: f32,
    seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: segsynth::job::DEFAULT_MODEL.into(),
            classes: "background".into(),
            content: "blur".into(),
            device: Device::Cpu.into(),
            pixels: Pixels::default().into(),
            threads: 1,
            edge: EdgeBand::DEFAULT.to_string(),
            feather: DEFAULT_FEATHER,
            temporal: DEFAULT_TEMPORAL,
            refine: Refine::default().into(),
            model_every: ModelEvery::default().to_string(),
            synth_scale: DEFAULT_SCALE,
            seed: DEFAULT_SEED,
        }
    }
}

impl Settings {
    /// What needs a new model when it changes.
    fn model_key(&self) -> (&str, super::Device, super::Pixels, u32) {
        (&self.model, self.device, self.pixels, self.threads)
    }

    // Properties parse with the same types as the command line and presets.
    fn session(&self) -> SessionOptions {
        SessionOptions {
            threads: self.threads.max(1) as usize,
            device: self.device.into(),
        }
    }

    fn pixels(&self) -> Pixels {
        self.pixels.into()
    }

    fn mask(&self) -> Result<MaskParams, String> {
        let edge: EdgeBand = self.edge.parse().map_err(|e| format!("{e}"))?;
        let refine = Refine::from(self.refine);
        let model_every: ModelEvery = self.model_every.parse().map_err(|e| format!("{e}"))?;
        Ok(MaskParams {
            temporal: self.temporal,
            lo: edge.lo,
            hi: edge.hi,
            feather: self.feather,
            refine: refine.guided(),
            model_every,
            ..MaskParams::default()
        })
    }

    /// The class -> content map of `classes` and `content` (specs separated by `;`).
    fn entries(&self) -> Result<Vec<Entry>, String> {
        let specs = self
            .content
            .split(';')
            .filter(|c| !c.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<ContentSpec>, _>>()
            .map_err(|e| format!("content: {e}"))?;
        segsynth::job::content_map(&self.classes(), &specs)
            .map_err(|e| format!("classes/content: {e}"))
    }

    fn classes(&self) -> Vec<String> {
        self.classes
            .split(',')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    }
}

/// The running stages and the settings they were built from.
struct Built {
    settings: Settings,
    segmenter: Segmenter,
    compositor: Compositor,
    synths: Vec<SynthStage>,
}

#[derive(Default)]
struct State {
    info: Option<gst_video::VideoInfo>,
    built: Option<Built>,
    frames: u64,
    /// The slowest of the recent frames, reported as latency.
    recent: Vec<Duration>,
    reported: Duration,
}

#[derive(Default)]
pub struct SegsynthFilter {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

/// Latency reported before any frame was timed.
const FIRST_LATENCY: Duration = Duration::from_millis(50);

/// The manifest `settings.model` names.
fn manifest(settings: &Settings) -> Result<Manifest, String> {
    resolve(&settings.model, &models_dir())
        .and_then(|p| Manifest::load(&p))
        .map_err(|e| format!("model={:?}: {e}", settings.model))
}

fn synth_scale(settings: &Settings) -> Result<(), String> {
    if settings.synth_scale > 0.0 && settings.synth_scale <= 1.0 {
        Ok(())
    } else {
        Err(format!(
            "synth-scale={}: expected a fraction in (0, 1]",
            settings.synth_scale
        ))
    }
}

impl SegsynthFilter {
    /// The map (entries, compositor, synth threads) for `settings`.
    fn build_map(
        settings: &Settings,
        segmenter: &mut Segmenter,
        fresh: bool,
    ) -> Result<(Compositor, Vec<SynthStage>), String> {
        let entries = settings.entries()?;
        let mask = settings.mask()?;
        if !fresh {
            segmenter
                .reconfigure(&entries, &mask)
                .map_err(|e| format!("classes: {e}"))?;
        }
        synth_scale(settings)?;
        let synth = SynthParams {
            seed: settings.seed,
            scale: settings.synth_scale,
            // The streaming thread never waits for a layer past the budget.
            exact: false,
            ..SynthParams::default()
        };
        let session = settings.session();
        let generators =
            open_generators(&entries, &session).map_err(|e| format!("content: {e}"))?;
        start_content(&entries, &[], generators, &synth, &mask, None)
            .map_err(|e| format!("content: {e}"))
    }

    /// The stages for `settings`: kept, given a new map (the model stays), or built anew
    /// for `frame` (a new model, device or thread count, or the first frame).
    fn follow(
        &self,
        state: &mut State,
        settings: &Settings,
        frame: &Frame,
    ) -> Result<(), gst::FlowError> {
        match state.built.as_mut() {
            Some(b) if b.settings == *settings => {}
            Some(b) if b.settings.model_key() == settings.model_key() => {
                let (compositor, synths) =
                    Self::build_map(settings, &mut b.segmenter, false).map_err(|e| self.fail(e))?;
                b.compositor = compositor;
                b.synths = synths;
                b.settings = settings.clone();
                gst::info!(
                    CAT,
                    imp = self,
                    "map changed while playing: content {}",
                    settings.content
                );
            }
            _ => state.built = Some(Self::build(settings, frame).map_err(|e| self.fail(e))?),
        }
        Ok(())
    }

    /// What can be checked without a frame: every property parses, the model's manifest
    /// loads and names the chosen classes, and the content resolves as on the command line
    /// (`gan:` generators by name or path, `image:` pictures decoded). `start` runs it, so a bad value fails the state
    /// change itself (gst-launch reports it at once) instead of the first buffer.
    fn check(settings: &Settings) -> Result<(), String> {
        settings.mask()?;
        let manifest = manifest(settings)?;
        let entries = settings.entries()?;
        selections(&entries, &manifest.name, manifest.classes())
            .map_err(|e| format!("classes: {e}"))?;
        check_content(&entries).map_err(|e| format!("content: {e}"))?;
        synth_scale(settings)?;
        Ok(())
    }

    /// Everything for `settings`: the model, its segmenter, the map.
    fn build(settings: &Settings, first: &Frame) -> Result<Built, String> {
        let session = settings.session();
        let pixels = settings.pixels();
        let manifest = manifest(settings)?;
        let model = Model::open(manifest, &session).map_err(|e| format!("model: {e}"))?;
        let provider = model.provider;
        let entries = settings.entries()?;
        let mut segmenter = Segmenter::new(model, &entries, &settings.mask()?)
            .map_err(|e| format!("classes: {e}"))?;
        let (mut compositor, synths) = Self::build_map(settings, &mut segmenter, true)?;
        if pixels.use_graphs(provider) {
            let fallback = pixels == Pixels::Auto;
            segmenter
                .use_graphs(session.clone(), first, fallback)
                .map_err(|e| e.to_string())?;
            compositor
                .use_graphs(session, first, fallback)
                .map_err(|e| e.to_string())?;
        }
        Ok(Built {
            settings: settings.clone(),
            segmenter,
            compositor,
            synths,
        })
    }

    fn fail(&self, message: String) -> gst::FlowError {
        gst::element_imp_error!(self, gst::LibraryError::Settings, ("segsynth: {}", message));
        gst::FlowError::Error
    }

    /// Records a frame's time; posts a latency message when the slowest recent one
    /// grew past what was reported.
    fn timed(&self, state: &mut State, took: Duration) {
        state.recent.push(took);
        if state.recent.len() > 30 {
            state.recent.remove(0);
        }
        let slowest = state.recent.iter().copied().max().unwrap_or_default();
        if slowest > state.reported.max(FIRST_LATENCY) {
            state.reported = slowest + slowest / 4;
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
    }

    fn latency(&self) -> Duration {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.reported))
            .filter(|d| !d.is_zero())
            .unwrap_or(FIRST_LATENCY)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for SegsynthFilter {
    const NAME: &'static str = "GstSegsynth";
    type Type = super::SegsynthFilter;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for SegsynthFilter {
    fn properties() -> &'static [glib::ParamSpec] {
        use std::sync::OnceLock;
        static PROPERTIES: OnceLock<Vec<glib::ParamSpec>> = OnceLock::new();
        PROPERTIES.get_or_init(|| {
            let d = Settings::default();
            let string = |name: &str, blurb: &str, default: &str| {
                glib::ParamSpecString::builder(name)
                    .blurb(blurb)
                    .default_value(Some(default))
                    .mutable_playing()
                    .build()
            };
            vec![
                string("model", "Segmentation model: a name in models/ or a path to a .toml manifest", &d.model),
                string("classes", "Classes whose pixels get the content, comma-separated (e.g. background)", &d.classes),
                string("content", "Content as in --content, several separated by ';' (e.g. background=gan:foliage;person=blur:8)", &d.content),
                glib::ParamSpecEnum::builder_with_default("device", d.device)
                    .blurb("Where ONNX Runtime runs")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("pixels", d.pixels)
                    .blurb("Where per-pixel steps run")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .blurb("ONNX Runtime intra-op threads")
                    .minimum(1)
                    .maximum(256)
                    .default_value(d.threads)
                    .mutable_playing()
                    .build(),
                string("edge", "Soft edge band LO,HI", &d.edge),
                glib::ParamSpecFloat::builder("feather")
                    .blurb("Mask feather radius in frame pixels")
                    .minimum(0.0)
                    .maximum(200.0)
                    .default_value(d.feather)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFloat::builder("temporal")
                    .blurb("Temporal smoothing of the mask, 0 (off) to 0.95")
                    .minimum(0.0)
                    .maximum(0.95)
                    .default_value(d.temporal)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("refine", d.refine)
                    .blurb("Mask edges: guided (follow the frame's edges) or off")
                    .mutable_playing()
                    .build(),
                string("model-every", "How often the model runs: auto (when the picture changed, at least every 3rd frame) or N (every Nth frame)", &d.model_every),
                glib::ParamSpecFloat::builder("synth-scale")
                    .blurb("Synthesis resolution as a fraction of the frame")
                    .minimum(0.01)
                    .maximum(1.0)
                    .default_value(d.synth_scale)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("seed")
                    .blurb("Seed of the GAN noise walk")
                    .default_value(d.seed)
                    .mutable_playing()
                    .build(),
            ]
        })
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let Ok(mut s) = self.settings.lock() else {
            return;
        };
        let text = || {
            value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        match pspec.name() {
            "model" => s.model = text(),
            "classes" => s.classes = text(),
            "content" => s.content = text(),
            "device" => s.device = value.get().unwrap_or(s.device),
            "pixels" => s.pixels = value.get().unwrap_or(s.pixels),
            "edge" => s.edge = text(),
            "refine" => s.refine = value.get().unwrap_or(s.refine),
            "model-every" => s.model_every = text(),
            "threads" => s.threads = value.get().unwrap_or(s.threads),
            "feather" => s.feather = value.get().unwrap_or(s.feather),
            "temporal" => s.temporal = value.get().unwrap_or(s.temporal),
            "synth-scale" => s.synth_scale = value.get().unwrap_or(s.synth_scale),
            "seed" => s.seed = value.get().unwrap_or(s.seed),
            _ => {}
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().map(|s| s.clone()).unwrap_or_default();
        match pspec.name() {
            "model" => s.model.to_value(),
            "classes" => s.classes.to_value(),
            "content" => s.content.to_value(),
            "device" => s.device.to_value(),
            "pixels" => s.pixels.to_value(),
            "edge" => s.edge.to_value(),
            "refine" => s.refine.to_value(),
            "model-every" => s.model_every.to_value(),
            "threads" => s.threads.to_value(),
            "feather" => s.feather.to_value(),
            "temporal" => s.temporal.to_value(),
            "synth-scale" => s.synth_scale.to_value(),
            "seed" => s.seed.to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }
}

impl GstObjectImpl for SegsynthFilter {}

impl ElementImpl for SegsynthFilter {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        use std::sync::OnceLock;
        static META: OnceLock<gst::subclass::ElementMetadata> = OnceLock::new();
        Some(META.get_or_init(|| {
            gst::subclass::ElementMetadata::new(
                "segsynth",
                "Filter/Effect/Video",
                "Segments each frame and composites blur, colour, images or GAN-synthesized content over the chosen classes",
                "segsynth",
            )
        }))
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        use std::sync::OnceLock;
        static TEMPLATES: OnceLock<Vec<gst::PadTemplate>> = OnceLock::new();
        TEMPLATES.get_or_init(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::I420)
                .build();
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .filter_map(|dir| {
                    let name = if dir == gst::PadDirection::Src {
                        "src"
                    } else {
                        "sink"
                    };
                    gst::PadTemplate::new(name, dir, gst::PadPresence::Always, &caps).ok()
                })
                .collect()
        })
    }
}

impl BaseTransformImpl for SegsynthFilter {
    const MODE: gstreamer_base::subclass::BaseTransformMode =
        gstreamer_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().map(|s| s.clone()).map_err(|_| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ["segsynth: settings lock poisoned"]
            )
        })?;
        Self::check(&settings).map_err(|message| {
            gst::error_msg!(gst::LibraryError::Settings, ["segsynth: {}", message])
        })?;
        if let Ok(mut s) = self.state.lock() {
            *s = Some(State::default());
        }
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Ok(mut s) = self.state.lock() {
            *s = None; // synth threads stop when their stages drop
        }
        Ok(())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(q) = query.view_mut()
        {
            let Some(sink) = self.obj().static_pad("sink") else {
                return false;
            };
            let mut upstream = gst::query::Latency::new();
            if !sink.peer_query(&mut upstream) {
                return false;
            }
            let (live, min, max) = upstream.result();
            let ours = gst::ClockTime::from_nseconds(self.latency().as_nanos() as u64);
            q.set(live, min + ours, max.map(|m| m + ours));
            return true;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }
}

impl VideoFilterImpl for SegsynthFilter {
    /// One frame, in place: its masks, then the content composited over them.
    fn transform_frame_ip(
        &self,
        vf: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self
            .settings
            .lock()
            .map(|s| s.clone())
            .map_err(|_| gst::FlowError::Error)?;
        let mut guard = self.state.lock().map_err(|_| gst::FlowError::Error)?;
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let started = Instant::now();
        let mut frame = read_frame(vf, state.frames)
            .map_err(|e| self.fail(format!("cannot read the frame: {e}")))?;
        state.frames += 1;
        self.follow(state, &settings, &frame)?;
        let Some(b) = state.built.as_mut() else {
            return Err(gst::FlowError::Error);
        };
        let masks = b
            .segmenter
            .masks(&frame)
            .map_err(|e| self.fail(format!("segmentation: {e}")))?;
        b.compositor
            .composite(&mut frame, &masks)
            .map_err(|e| self.fail(format!("compositing: {e}")))?;
        write_planes(vf, &frame).map_err(|e| self.fail(format!("cannot write the frame: {e}")))?;
        let took = started.elapsed();
        self.timed(state, took);
        Ok(gst::FlowSuccess::Ok)
    }

    fn set_info(
        &self,
        _incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        _outcaps: &gst::Caps,
        _out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        if let Ok(mut s) = self.state.lock()
            && let Some(state) = s.as_mut()
        {
            // A new size or colour matrix: the stages follow it frame by frame (the
            // graphs rebuild, the synth layers scale); only the buffer layout changes here.
            state.info = Some(in_info.clone());
        }
        Ok(())
    }
}
