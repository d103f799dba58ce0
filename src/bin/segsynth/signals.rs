//! Process-wide signal and panic handling.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Done first thing in `main`, before any thread starts.
pub fn install() {
    // Past a size limit (ulimit -f) a write should fail with EFBIG and be reported,
    // not kill the process with SIGXFSZ.
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // A panic is a bug: one line naming it, no backtrace hint (stages turn it into an error).
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current().name().unwrap_or("main").to_string();
        eprintln!("segsynth: internal error in thread {thread}: {info}");
    }));
}

/// A flag set by SIGINT and SIGTERM: jobs stop and finalise their outputs.
pub fn interrupt_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag))?;
    }
    Ok(flag)
}
