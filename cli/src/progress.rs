//! Progress bars on stderr, one per file and one in total, drawn only when stderr is a terminal
//! (indicatif hides them otherwise), so that scripts read clean output.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    multi: MultiProgress,
    total: Option<ProgressBar>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

const FILE_TEMPLATE: &str =
    "{msg:24!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4} {prefix}";

impl Progress {
    /// Bars for `files` files of `total_bytes` in all; a total bar when there is more than one.
    pub fn new(total_bytes: u64, files: usize) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = (files > 1).then(|| {
            let bar = multi.add(ProgressBar::new(total_bytes));
            bar.set_style(style(FILE_TEMPLATE));
            bar.set_message(format!("{files} files"));
            bar
        });
        Self { multi, total }
    }

    /// A bar for one file of `size` bytes.
    pub fn file(&self, name: &str, size: u64) -> Bars {
        let bar = match &self.total {
            Some(total) => self.multi.insert_before(total, ProgressBar::new(size)),
            None => self.multi.add(ProgressBar::new(size)),
        };
        bar.set_style(style(FILE_TEMPLATE));
        bar.set_message(name.to_owned());
        Bars {
            file: bar,
            total: self.total.clone(),
        }
    }

    /// Runs `f` (which prints) with the bars out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// Takes the bars off the screen for good: a request still winding down after Ctrl-C
    /// would otherwise draw them again.
    pub fn clear(&self) {
        // Nothing to clear on a stream that is not a terminal.
        let _ = self.multi.clear();
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
    }
}

/// The bars one file moves: its own and the total.
#[derive(Clone)]
pub struct Bars {
    file: ProgressBar,
    total: Option<ProgressBar>,
}

impl Bars {
    pub fn inc(&self, bytes: u64) {
        self.file.inc(bytes);
        if let Some(total) = &self.total {
            total.inc(bytes);
        }
    }

    /// Takes back bytes counted for a PUT that failed and is sent again.
    pub fn dec(&self, bytes: u64) {
        self.file
            .set_position(self.file.position().saturating_sub(bytes));
        if let Some(total) = &self.total {
            total.set_position(total.position().saturating_sub(bytes));
        }
    }

    /// A word after the bar: `hashing`, `verifying 40%`, …
    pub fn status(&self, text: impl Into<String>) {
        self.file.set_prefix(text.into());
    }

    pub fn finish(&self, text: impl Into<String>) {
        self.file.set_prefix(text.into());
        self.file.finish();
    }

    /// Leaves the bar where it stopped, saying why.
    pub fn abandon(&self, text: impl Into<String>) {
        self.file.set_prefix(text.into());
        self.file.abandon();
    }
}
