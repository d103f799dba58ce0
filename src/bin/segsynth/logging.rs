//! The binary's tracing subscriber: the library's notices (`segsynth::notice!`) as plain
//! `segsynth: ...` lines, always; every other event at the `--log` level.

use std::fmt;

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
        .with_writer(std::io::stderr)
        .with_filter(filter_fn(|m| m.target() == NOTICE));
    let rest = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(filter_fn(|m| m.target() != NOTICE))
        .with_filter(logs);
    Registry::default().with(notices).with(rest).init();
}

/// `segsynth: MESSAGE`.
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
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
