//! The binary's tracing subscriber: the library's notices (`segsynth::notice!`) as plain
//! `segsynth: ...` lines, always; every other event at the `--log` level.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

const NOTICE: &str = "segsynth::notice";

/// Installs the subscriber; `level` is `--log` (error, warn, info, debug).
pub fn install(level: &str) {
    let logs = EnvFilter::try_new(format!("segsynth={level},{level}"))
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    let notices = tracing_subscriber::fmt::layer()
        .event_format(Notice)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .with_filter(filter_fn(|m| m.target() == NOTICE || is_stream(m)));
    let rest = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(filter_fn(|m| m.target() != NOTICE))
        .with_filter(logs);
    Registry::default().with(notices).with(rest).init();
}

/// The span a stream of `run` runs in: its notices say which stream they are about.
fn is_stream(m: &tracing::Metadata<'_>) -> bool {
    m.is_span() && m.name() == "stream"
}

/// `segsynth: MESSAGE`, or `segsynth: stream NAME: MESSAGE` inside a stream's span.
struct Notice;

impl<S, N> FormatEvent<S, N> for Notice
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "segsynth: ")?;
        let spans = ctx.event_scope().into_iter().flat_map(|s| s.from_root());
        for span in spans.filter(|s| s.name() == "stream") {
            let ext = span.extensions();
            if let Some(f) = ext.get::<tracing_subscriber::fmt::FormattedFields<N>>() {
                write!(writer, "{}: ", f.fields.replacen('=', " ", 1))?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
