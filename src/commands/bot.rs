//! `tessera bot`: run a synthetic participant until its duration elapses or SIGINT/SIGTERM.

use std::process::ExitCode;

use crate::cli::BotArgs;
use crate::logging;

pub fn run(args: BotArgs) -> ExitCode {
    // The WebRTC stack is chatty at info; a bot shows its own progress on stdout.
    logging::init_with(Default::default(), "warn,rtc=error,rtc_ice=error,webrtc=error,tessera=info");
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tessera bot: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let stop =
            crate::server::shutdown::signal().map_err(|e| crate::bot::BotError::Config(format!("signals: {e}")))?;
        crate::bot::run(args, stop).await
    });
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tessera bot: {err}");
            ExitCode::FAILURE
        }
    }
}
