//! `tessera bot`: run a synthetic participant (or, with `--subscribers`, many receive-only
//! ones) until its duration elapses or SIGINT/SIGTERM.

use std::process::ExitCode;

use crate::cli::BotArgs;
use crate::logging;

pub fn run(args: BotArgs) -> ExitCode {
    // The WebRTC stack is chatty at info; a bot shows its own progress on stdout.
    logging::init_with(Default::default(), "warn,rtc=error,rtc_ice=error,webrtc=error,tessera=info");
    // One participant needs little; a load generator's subscribers use every core there is.
    let workers = match args.subscribers {
        0 => 2,
        _ => std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tessera bot: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let stop =
            crate::server::shutdown::signal().map_err(|e| crate::bot::BotError::Config(format!("signals: {e}")))?;
        match args.subscribers {
            0 => crate::bot::run(args, stop).await.map(drop),
            _ => crate::bot::load::run(&args, stop).await.map(drop),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tessera bot: {err}");
            ExitCode::FAILURE
        }
    }
}
