//! `segsynth run`: the live job (preset + command line -> input, stages, outputs).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::ArgMatches;

use segsynth::endpoint::{Credentials, HttpEndpoint, InputSpec, OutputSpec, is_loopback};
use segsynth::endpoint::{Preset, StreamPreset, parse_input, parse_output};
use segsynth::io::rtsp_server::{self, ServeSettings};
use segsynth::io::sink::live::{LiveOutput, check_output};
use segsynth::io::source::live::{LiveInput, LiveSettings, check_input};
use segsynth::io::webrtc::{Publishing, VideoSize, WhipInput};
use segsynth::job::Stages;
use segsynth::pipeline::{FrameSource, Prepended, Progress};

use crate::args::RunArgs;

pub fn run(mut args: RunArgs, matches: Option<&ArgMatches>) -> anyhow::Result<ExitCode> {
    let preset = match &args.config {
        Some(p) => Preset::load(p)?,
        None => Preset::default(),
    };
    crate::options::overlay_preset(&mut args.processing, &preset, matches);
    if let Some(streams) = preset.streams.clone() {
        return run_streams(&args, &preset, &streams);
    }
    let (input_text, outputs) = given_endpoints(&args, &preset)?;
    let progress = Arc::new(Progress::default());
    let stream = Stream::check(&args, &preset, &input_text, &outputs, progress)?;
    let metrics_address = metrics_address(&args, &preset)?;
    let mut stages = Stages::prepare(crate::options::job_options(&args.processing, true)?)?;
    let stop = crate::signals::interrupt_flag()?;
    let _metrics = start_metrics(metrics_address.as_deref(), &stream.progress)?;
    if let Some(secs) = args.duration {
        stop_after(secs, &stop);
    }
    let stats = (args.stats_every > 0.0).then(|| {
        stats_thread(
            Arc::clone(&stream.progress),
            vec![Arc::clone(&stop)],
            args.stats_every,
        )
    });
    // Live edits of the preset (a run from a preset only).
    let watch = |stages: &mut Stages, progress: &Arc<Progress>, size| match &args.config {
        Some(path) => crate::watch::PresetWatch::start(
            path,
            preset.clone(),
            args.processing.clone(),
            stages.editor(progress),
            size,
            Arc::clone(&stop),
        )
        .map(Some),
        None => Ok(None),
    };
    let result = stream.run(&mut stages, &stop, watch);
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = stats {
        let _ = h.join();
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// A preset of `[[streams]]`: every stream checked first, the stages prepared once, then
/// each stream on its own thread with stages forked from them (one model session). A
/// stream that fails ends alone, said at once; the exit code says so at the end.
fn run_streams(
    args: &RunArgs,
    preset: &Preset,
    streams: &[StreamPreset],
) -> anyhow::Result<ExitCode> {
    if args.input.is_some() || !args.outputs.is_empty() {
        return Err(crate::options::usage(
            "-i/-o with a preset of [[streams]]; expected the streams' own inputs and outputs"
                .into(),
        ));
    }
    check_mounts(streams)?;
    let first = Arc::new(Progress::named(&streams[0].name));
    let mut checked = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        let outputs = parse_outputs(&s.outputs)?;
        let progress = match i {
            0 => Arc::clone(&first),
            _ => Arc::new(first.stream(&s.name)),
        };
        let stream = Stream::check(args, preset, &s.input, &outputs, progress)
            .map_err(|e| e.context(format!("stream {}", s.name)))?;
        checked.push((s.name.clone(), stream));
    }
    let metrics_address = metrics_address(args, preset)?;
    let stages = Stages::prepare(crate::options::job_options(&args.processing, true)?)?;
    let stop = crate::signals::interrupt_flag()?;
    let _metrics = start_metrics(metrics_address.as_deref(), &first)?;
    if let Some(secs) = args.duration {
        stop_after(secs, &stop);
    }
    let failed = std::thread::scope(|scope| {
        let running: Vec<_> = checked
            .into_iter()
            .map(|(name, stream)| {
                let mut mine = stages.fork();
                let stop = &stop;
                let run = move || {
                    let _span = tracing::error_span!("stream", stream = %name).entered();
                    // Its statistics end with the stream (or with the run).
                    let ended = Arc::new(AtomicBool::new(false));
                    let stats = (args.stats_every > 0.0).then(|| {
                        let p = Arc::clone(&stream.progress);
                        let until = vec![Arc::clone(stop), Arc::clone(&ended)];
                        stats_thread(p, until, args.stats_every)
                    });
                    let result = stream.run(&mut mine, stop, |_, _, _| Ok(None::<()>));
                    ended.store(true, Ordering::Relaxed);
                    if let Some(h) = stats {
                        let _ = h.join();
                    }
                    // Said when it happens; the others go on.
                    if let Err(e) = &result {
                        eprintln!("segsynth: error: stream {name}: {e:#}");
                    }
                    result.is_err()
                };
                scope.spawn(run)
            })
            .collect();
        let joined = running.into_iter().map(|h| h.join().unwrap_or(true));
        joined.filter(|&failed| failed).count()
    });
    stop.store(true, Ordering::Relaxed);
    if let Some((calls, frames)) = stages.batch_stats() {
        eprintln!("model batches: {frames} frames in {calls} calls");
    }
    if failed > 0 {
        eprintln!("{failed} of {} streams failed", streams.len());
        return Ok(ExitCode::from(crate::EXIT_ERROR));
    }
    Ok(ExitCode::SUCCESS)
}

/// Each served RTSP mount (address, port, path), each recording and each WHIP/WHEP
/// address (its HTTP server) belongs to one stream.
fn check_mounts(streams: &[StreamPreset]) -> anyhow::Result<()> {
    let mut seen: Vec<(String, u16, String, String)> = Vec::new();
    let mut files: Vec<(std::path::PathBuf, &str)> = Vec::new();
    let mut http: Vec<(String, &str)> = Vec::new();
    for s in streams {
        let input = parse_input(&s.input).map_err(crate::options::usage)?;
        let outputs = parse_outputs(&s.outputs)?;
        let listens = outputs
            .iter()
            .filter_map(|o| match o {
                OutputSpec::Whep(e) => Some(e.listen.clone()),
                _ => None,
            })
            .chain(match &input {
                InputSpec::Whip(e) => Some(e.listen.clone()),
                _ => None,
            });
        for listen in listens {
            if let Some((_, other)) = http.iter().find(|(l, n)| *l == listen && *n != s.name) {
                return Err(crate::options::usage(format!(
                    "streams {other} and {} both serve WHIP/WHEP on {listen}; expected a port per stream",
                    s.name
                )));
            }
            http.push((listen, &s.name));
        }
        for o in outputs {
            if let OutputSpec::File(path) = &o {
                if let Some((_, other)) = files.iter().find(|(p, _)| p == path) {
                    return Err(crate::options::usage(format!(
                        "streams {other} and {} both record to {}; expected a file per stream",
                        s.name,
                        path.display()
                    )));
                }
                files.push((path.clone(), &s.name));
            }
            if let OutputSpec::RtspServe {
                address,
                port,
                path,
                ..
            } = &o
            {
                same_socket(&seen, address, *port, &s.name)?;
                let mount = (address.clone(), *port, path.clone(), s.name.clone());
                if seen
                    .iter()
                    .any(|m| (&m.0, m.1, &m.2) == (address, *port, path))
                {
                    return Err(crate::options::usage(format!(
                        "stream {}: {o} is served twice; expected one mount per stream",
                        s.name
                    )));
                }
                seen.push(mount);
            }
        }
    }
    Ok(())
}

/// Refuses an RTSP address written two ways for one port across streams (`localhost`
/// and `127.0.0.1`, or a wildcard and one address): one process serves each address and
/// port with one server, found by the address as written, so the second spelling would
/// be a second server on a socket already taken.
fn same_socket(
    seen: &[(String, u16, String, String)],
    address: &str,
    port: u16,
    stream: &str,
) -> anyhow::Result<()> {
    let ips = addresses(address, port);
    let clash = seen.iter().find(|(other, p, _, _)| {
        *p == port && other != address && {
            let theirs = addresses(other, port);
            ips.iter()
                .any(|a| a.is_unspecified() || theirs.iter().any(|b| b.is_unspecified() || a == b))
        }
    });
    let Some((other, _, _, name)) = clash else {
        return Ok(());
    };
    let who = if name == stream {
        format!("stream {stream} serves")
    } else {
        format!("streams {name} and {stream} serve")
    };
    Err(crate::options::usage(format!(
        "{who} RTSP on {other}:{port} and {address}:{port}, one socket written two ways; expected the same address for every mount on a port"
    )))
}

/// The addresses a listening `host` stands for (a name resolved; unresolvable: none).
fn addresses(host: &str, port: u16) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map(|a| a.map(|a| a.ip()).collect())
        .unwrap_or_default()
}

/// `--metrics` or the preset's `metrics`, checked.
fn metrics_address(args: &RunArgs, preset: &Preset) -> anyhow::Result<Option<String>> {
    match args.metrics.as_ref().or(preset.metrics.as_ref()) {
        Some(a) => Ok(Some(crate::metrics::address(a, args.metrics_allow_remote)?)),
        None => Ok(None),
    }
}

/// One live input and its outputs, checked before anything loads.
struct Stream {
    input: InputSpec,
    outputs: Vec<OutputSpec>,
    settings: LiveSettings,
    webrtc: crate::web::RunServe,
    progress: Arc<Progress>,
}

impl Stream {
    fn check(
        args: &RunArgs,
        preset: &Preset,
        input_text: &str,
        outputs: &[OutputSpec],
        progress: Arc<Progress>,
    ) -> anyhow::Result<Stream> {
        let input = parse_input(input_text).map_err(crate::options::usage)?;
        let settings = live_settings(args, preset, outputs, &progress, input_text)?;
        let webrtc = webrtc_settings(args, &input, outputs, &settings)?;
        check_input(&input)?;
        for o in outputs {
            check_output(o, &settings)?;
        }
        Ok(Stream {
            input,
            outputs: outputs.to_vec(),
            settings,
            webrtc,
            progress,
        })
    }

    /// Starts the outputs and the input, runs `stages` until the input ends or `stop`,
    /// finishes the outputs and prints the summary. `watch` may start live edits once
    /// the first frame gives the size.
    fn run<W>(
        self,
        stages: &mut Stages,
        stop: &Arc<AtomicBool>,
        watch: impl FnOnce(&mut Stages, &Arc<Progress>, (usize, usize)) -> anyhow::Result<Option<W>>,
    ) -> anyhow::Result<()> {
        let (settings, progress) = (&self.settings, &self.progress);
        let mut output = LiveOutput::start(&self.outputs, settings, Arc::clone(stop))?;
        let stream = stream_prefix(progress);
        for url in &output.served {
            eprintln!("segsynth: {stream}serving {url}");
        }
        let (mut source, publishing) = Source::start(self.input, settings, stop)?;
        let _webrtc =
            crate::web::serve_run(publishing, &output.players, self.webrtc, progress, stop)?;
        let Some(first) = source.next_frame()? else {
            // Nothing to keep: dropping the outputs removes their partial recordings.
            drop(output);
            anyhow::bail!("the input delivered no frame");
        };
        let _watch = watch(
            stages,
            progress,
            (first.picture.width(), first.picture.height()),
        )?;
        let first_copy = first.clone();
        let mut chained = Prepended {
            first: Some(first),
            inner: &mut source,
        };
        let result = stages.run(&first_copy, &mut chained, &mut output, stop, progress);
        let note = source.note();
        drop(source);
        let finished = output.finish();
        let mut summary = result?;
        summary.notes.extend(note);
        let (p50, p99) = progress.latency();
        let header = stream.replace(": ", ":\n");
        // One write, so the summaries of streams ending together do not interleave.
        eprintln!(
            "{header}{summary}live added latency (appsink -> appsrc): p50 {p50:.1} ms, p99 {p99:.1} ms"
        );
        // A failed output was reported when it failed; the exit code says so too.
        finished?;
        Ok(())
    }
}

/// `--metrics`: the Prometheus endpoint, when asked for.
fn start_metrics(
    address: Option<&str>,
    progress: &Arc<Progress>,
) -> anyhow::Result<Option<crate::metrics::MetricsServer>> {
    let Some(a) = address else { return Ok(None) };
    let server = crate::metrics::MetricsServer::start(a, Arc::clone(progress))?;
    eprintln!("segsynth: metrics at http://{a}/metrics");
    Ok(Some(server))
}

/// `--duration`: sets `stop` after `secs`.
fn stop_after(secs: f64, stop: &Arc<AtomicBool>) {
    let s = Arc::clone(stop);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(secs));
        s.store(true, Ordering::Relaxed);
    });
}

/// The input and the outputs from the command line or the preset.
fn given_endpoints(args: &RunArgs, preset: &Preset) -> anyhow::Result<(String, Vec<OutputSpec>)> {
    let input = args.input.clone().or(preset.input.clone()).ok_or_else(|| {
        anyhow::anyhow!(
            "no input: give -i test:, -i v4l2:/dev/video0, -i rtsp://... or -i FILE (or a preset)"
        )
    })?;
    let outputs = if args.outputs.is_empty() {
        preset.outputs.clone().unwrap_or_default()
    } else {
        args.outputs.clone()
    };
    if outputs.is_empty() {
        anyhow::bail!(
            "no output: give -o display:, -o rtsp://127.0.0.1:8554/live, -o v4l2:/dev/videoN, -o rtsp-publish://HOST:PORT/PATH or -o FILE"
        );
    }
    Ok((input, parse_outputs(&outputs)?))
}

/// Outputs as given, parsed; each recording at most once.
fn parse_outputs(outputs: &[String]) -> anyhow::Result<Vec<OutputSpec>> {
    let outputs = outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::options::usage)?;
    let files: Vec<&std::path::PathBuf> = outputs
        .iter()
        .filter_map(|o| match o {
            OutputSpec::File(p) => Some(p),
            _ => None,
        })
        .collect();
    if let Some((_, dup)) = files
        .iter()
        .enumerate()
        .find(|(i, p)| files[..*i].contains(p))
    {
        return Err(crate::options::usage(format!(
            "output {} is given twice; expected each recording once",
            dup.display()
        )));
    }
    Ok(outputs)
}

/// The live job's settings from the command line, the preset and the defaults, checked.
fn live_settings(
    args: &RunArgs,
    preset: &Preset,
    outputs: &[OutputSpec],
    progress: &Progress,
    input: &str,
) -> anyhow::Result<LiveSettings> {
    let rtsp = preset.rtsp.clone().unwrap_or_default();
    let (input_credentials, mut serve) = security(args, &rtsp, outputs)?;
    serve.clients = progress.metrics.rtsp_clients.clone();
    let settings = LiveSettings {
        width: args.width.or(preset.width).unwrap_or(1280),
        height: args.height.or(preset.height).unwrap_or(720),
        fps: args.fps.or(preset.fps).unwrap_or(30),
        realtime: args.realtime || preset.realtime.unwrap_or(false),
        input_credentials,
        serve,
        rtsp_transport: args
            .rtsp_transport
            .clone()
            .or(rtsp.transport)
            .unwrap_or_else(|| "tcp".into()),
        overwrite: args.overwrite,
        stall_after: Duration::from_secs(3),
        display_sink: args.display_sink.clone(),
        title: format!("segsynth: {}", segsynth::endpoint::redact_url(input)),
        reconnects: progress.metrics.input_reconnects.clone(),
    };
    if !matches!(settings.rtsp_transport.as_str(), "tcp" | "udp") {
        anyhow::bail!(
            "--rtsp-transport {}: expected tcp or udp",
            settings.rtsp_transport
        );
    }
    let side = segsynth::pipeline::MAX_FRAME_SIDE as u32;
    if !(16..=side).contains(&settings.width)
        || !(16..=side).contains(&settings.height)
        || settings.width % 2 == 1
        || settings.height % 2 == 1
        || !(1..=240).contains(&settings.fps)
    {
        return Err(crate::options::usage(format!(
            "live size {}x{} at {} fps (--width/--height/--fps or the preset's width/height/fps): expected even width/height from 16 to {side} and 1-240 fps",
            settings.width, settings.height, settings.fps
        )));
    }
    if let Some(d) = args.duration {
        crate::options::check_range("--duration", d, 0.001, 1e7, " seconds")?;
    }
    crate::options::check_range(
        "--stats-every",
        args.stats_every,
        0.0,
        86_400.0,
        " seconds (0 = off)",
    )?;
    Ok(settings)
}

/// `stream NAME: ` before a line about one stream of several; nothing for a run of one.
fn stream_prefix(p: &Progress) -> String {
    match p.metrics.stream_name() {
        segsynth::pipeline::metrics::MAIN_STREAM => String::new(),
        name => format!("stream {name}: "),
    }
}

/// Prints live statistics every `every` seconds until any flag of `until` is set.
fn stats_thread(
    p: Arc<Progress>,
    until: Vec<Arc<AtomicBool>>,
    every: f64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut next = Duration::from_secs_f64(every);
        while !until.iter().any(|f| f.load(Ordering::Relaxed)) {
            std::thread::sleep(Duration::from_millis(100));
            if started.elapsed() >= next {
                next += Duration::from_secs_f64(every);
                let (p50, p99) = p.latency();
                let out = p.frames_out.load(Ordering::Relaxed);
                let stream = stream_prefix(&p);
                eprintln!(
                    "segsynth: {stream}live {out} frames, {:.1} fps, added latency p50 {p50:.1} ms p99 {p99:.1} ms, dropped {}",
                    out as f64 / started.elapsed().as_secs_f64(),
                    p.dropped.load(Ordering::Relaxed)
                );
            }
        }
    })
}

/// Credentials and limits, with the rules that keep a served stream safe: half a
/// credential pair is exit 2, and so is serving beyond loopback without auth unless
/// `--rtsp-allow-anonymous` says so. Passwords never appear in a message.
fn security(
    args: &RunArgs,
    rtsp: &segsynth::endpoint::RtspSettings,
    outputs: &[OutputSpec],
) -> anyhow::Result<(Option<Credentials>, ServeSettings)> {
    use crate::options::{pair, password, usage};
    let input_password = password(
        args.input_password.as_deref(),
        args.input_password_file.as_deref(),
        "SEGSYNTH_INPUT_PASSWORD",
    )?;
    let input = pair(
        args.input_user.clone(),
        input_password,
        (
            "--input-user",
            "--input-password (or --input-password-file, SEGSYNTH_INPUT_PASSWORD)",
        ),
    )?;
    let served_password = password(
        args.rtsp_password.as_deref().or(rtsp.password.as_deref()),
        args.rtsp_password_file
            .as_deref()
            .or(rtsp.password_file.as_deref()),
        "SEGSYNTH_RTSP_PASSWORD",
    )?;
    let served = pair(
        args.rtsp_user.clone().or(rtsp.user.clone()),
        served_password,
        (
            "--rtsp-user",
            "--rtsp-password (or --rtsp-password-file, SEGSYNTH_RTSP_PASSWORD)",
        ),
    )?;
    let (max_clients, session_timeout) = limits(args, rtsp)?;
    let allow_anonymous = args.rtsp_allow_anonymous || rtsp.allow_anonymous.unwrap_or(false);
    let tls = match (
        args.served.tls_cert.clone().or(rtsp.tls_cert.clone()),
        args.served.tls_key.clone().or(rtsp.tls_key.clone()),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(usage(
                "--tls-cert and --tls-key go together; give both or neither".into(),
            ));
        }
    };
    check_served(outputs, served.is_some(), allow_anonymous, tls.is_some())?;
    if let Some((cert, key)) = &tls {
        // A bad certificate or key is a clear error before anything is served.
        segsynth::io::init()?;
        rtsp_server::load_tls(cert, key)?;
    }
    Ok((
        input,
        ServeSettings {
            credentials: served,
            max_clients,
            session_timeout,
            tls,
            clients: Default::default(),
        },
    ))
}

/// The live input: a pipeline of its own, or whatever a WHIP publisher sends.
enum Source {
    Live(Box<LiveInput>),
    Whip(WhipInput),
}

impl Source {
    /// Starts the input; a WHIP input also gives the handle its endpoint answers with.
    fn start(
        input: InputSpec,
        settings: &LiveSettings,
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<(Source, Option<(HttpEndpoint, Publishing)>)> {
        Ok(match input {
            InputSpec::Whip(endpoint) => {
                let label = InputSpec::Whip(endpoint.clone()).to_string();
                let (whip, publishing) =
                    WhipInput::new(label, video_size(settings), Arc::clone(stop));
                (Source::Whip(whip), Some((endpoint, publishing)))
            }
            other => (
                Source::Live(Box::new(LiveInput::start(
                    other,
                    settings.clone(),
                    Arc::clone(stop),
                )?)),
                None,
            ),
        })
    }

    /// What the input had to say at the end (frames it fitted to the first size).
    fn note(&self) -> Option<String> {
        match self {
            Source::Live(l) => l.keep.note(),
            Source::Whip(_) => None,
        }
    }
}

impl FrameSource for Source {
    fn next_frame(
        &mut self,
    ) -> Result<Option<segsynth::frame::Frame>, segsynth::pipeline::PipelineError> {
        match self {
            Source::Live(l) => l.next_frame(),
            Source::Whip(w) => w.next_frame(),
        }
    }
}

fn video_size(settings: &LiveSettings) -> VideoSize {
    VideoSize {
        width: settings.width,
        height: settings.height,
        fps: settings.fps,
    }
}

/// The WHIP/WHEP endpoints' token (needed beyond loopback), TLS and limits, checked
/// before anything loads.
fn webrtc_settings(
    args: &RunArgs,
    input: &InputSpec,
    outputs: &[OutputSpec],
    settings: &LiveSettings,
) -> anyhow::Result<crate::web::RunServe> {
    let mut listens: Vec<&str> = outputs
        .iter()
        .filter_map(|o| match o {
            OutputSpec::Whep(e) => Some(e.listen.as_str()),
            _ => None,
        })
        .collect();
    if let InputSpec::Whip(e) = input {
        listens.push(&e.listen);
    }
    crate::options::check_range("--max-sessions", args.max_sessions as f64, 1.0, 1000.0, "")?;
    let token = crate::web::token(
        args.served.token.as_deref(),
        args.served.token_file.as_deref(),
        &listens,
        (false, ""),
    )?;
    let tls = match (&settings.serve.tls, listens.is_empty()) {
        (Some((c, k)), false) => Some(crate::web::read_pem(c, k)?),
        _ => None,
    };
    Ok(crate::web::RunServe {
        token,
        tls,
        max_players: args.max_sessions as usize,
        size: video_size(settings),
    })
}

/// The served stream's client limit and session timeout, checked.
fn limits(args: &RunArgs, rtsp: &segsynth::endpoint::RtspSettings) -> anyhow::Result<(u32, u32)> {
    use crate::options::check_range;
    let max_clients = args
        .rtsp_max_clients
        .or(rtsp.max_clients)
        .unwrap_or(rtsp_server::DEFAULT_MAX_CLIENTS);
    check_range("--rtsp-max-clients", max_clients as f64, 1.0, 10_000.0, "")?;
    let session_timeout = args
        .rtsp_session_timeout
        .or(rtsp.session_timeout)
        .unwrap_or(rtsp_server::DEFAULT_SESSION_TIMEOUT);
    check_range(
        "--rtsp-session-timeout",
        session_timeout as f64,
        1.0,
        86_400.0,
        " seconds",
    )?;
    Ok((max_clients, session_timeout))
}

/// Served RTSP outputs: rtsps:// needs a certificate, and serving beyond loopback needs a
/// password unless `--rtsp-allow-anonymous` says so.
fn check_served(
    outputs: &[OutputSpec],
    has_password: bool,
    allow_anonymous: bool,
    has_tls: bool,
) -> anyhow::Result<()> {
    use crate::options::usage;
    for o in outputs {
        if let OutputSpec::RtspServe {
            address,
            tls: wants_tls,
            ..
        } = o
        {
            if *wants_tls && !has_tls {
                return Err(usage(format!(
                    "{o} needs --tls-cert CERT.pem and --tls-key KEY.pem"
                )));
            }
            if !has_password && !allow_anonymous && !is_loopback(address) {
                return Err(usage(format!(
                    "{o} would serve the stream to the network without authentication; give --rtsp-user and --rtsp-password (or --rtsp-password-file), or pass --rtsp-allow-anonymous to serve it openly"
                )));
            }
        }
    }
    Ok(())
}
