//! `segsynth process`: the file job, with a progress display.

use std::process::ExitCode;
use std::sync::Arc;

use segsynth::io::file_job::{Ending, FileJob};
use segsynth::job::Stages;
use segsynth::pipeline::Progress;

use crate::args::ProcessArgs;
use crate::options::{encoder, job_options};
use crate::signals::interrupt_flag;
use crate::{EXIT_INCOMPLETE, EXIT_INTERRUPTED, progress};

pub fn process(args: ProcessArgs) -> anyhow::Result<ExitCode> {
    // What the user typed becomes validated options first; from here they only go down
    // the layers: the files, the stages, the job.
    let encoder = encoder(&args.processing)?;
    let options = job_options(&args.processing, false)?;
    segsynth::io::sink::file::check_output(&args.output, args.overwrite)?;
    segsynth::io::source::file::check_input(&args.input)?;
    let mut stages = Stages::prepare(options)?;
    let job = FileJob {
        input: &args.input,
        output: &args.output,
        overwrite: args.overwrite,
        encoder,
        interrupt: interrupt_flag()?,
        progress: Arc::new(Progress::default()),
    };
    let display = (!args.quiet).then(|| progress::spawn(Arc::clone(&job.progress)));
    let result = job.run(&mut stages);
    if let Some(d) = display {
        d.finish();
    }
    let (summary, ending) = result?;
    eprint!("{summary}");
    Ok(match ending {
        Ending::Complete => {
            eprintln!("wrote {}", args.output.display());
            ExitCode::SUCCESS
        }
        Ending::Interrupted => {
            eprintln!(
                "interrupted: wrote {} with the {} frames processed so far",
                args.output.display(),
                summary.frames_out
            );
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Ending::InputIncomplete(why) => {
            eprintln!(
                "warning: the input ended early ({why}); wrote {} with the {} frames that decoded",
                args.output.display(),
                summary.frames_out
            );
            ExitCode::from(EXIT_INCOMPLETE)
        }
    })
}
