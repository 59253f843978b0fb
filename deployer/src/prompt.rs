//! The confirmation question (dialoguer), one target at a time, and Ctrl-C met while it waits.

use std::io::IsTerminal;

use crate::targets::Ctx;

/// Asks on the terminal (dialoguer); without a terminal the answer is no. Ctrl-C at the question
/// interrupts the run like Ctrl-C anywhere else: the answer is no, and the run stops waiting.
pub async fn confirm(ctx: &Ctx, question: &str) -> bool {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        ctx.say("not confirmed: standard input is not a terminal (use --yes)");
        return false;
    }
    let _turn = ctx.prompt.lock().await;
    let question = format!("[{}] {question}", ctx.label);
    let answer = tokio::task::spawn_blocking(move || {
        crate::progress::suspend(|| {
            dialoguer::Confirm::new()
                .with_prompt(question)
                .default(false)
                .interact_opt()
        })
    })
    .await;
    match answer {
        Ok(Ok(Some(yes))) => yes,
        Ok(Ok(None)) => false,
        // console reads the key in raw mode, where Ctrl-C is a key: make it the signal it meant.
        Ok(Err(dialoguer::Error::IO(e))) if e.kind() == std::io::ErrorKind::Interrupted => {
            crate::targets::interrupt();
            false
        }
        _ => false,
    }
}
