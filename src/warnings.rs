//! The response's `warnings`: one line each, bounded so that hostile input cannot make the
//! response (or the API server's reply to the user) grow without limit.

/// Longest warning, in characters (longer ones are cut and end with `…`).
pub const MAX_WARNING_CHARS: usize = 256;
/// Most warnings in one response; the rest are summarised in one extra line.
pub const MAX_WARNINGS: usize = 20;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Warnings {
    lines: Vec<String>,
}

impl Warnings {
    pub fn push(&mut self, line: String) {
        // Identical lines (the same ignored value seen by two providers' checks) say nothing new.
        if !self.lines.contains(&line) {
            self.lines.push(line);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The bounded list that goes into the response.
    pub fn finish(self) -> Vec<String> {
        let total = self.lines.len();
        let mut out: Vec<String> = self
            .lines
            .into_iter()
            .take(if total > MAX_WARNINGS {
                MAX_WARNINGS - 1
            } else {
                MAX_WARNINGS
            })
            .map(|line| bound(&line))
            .collect();
        if total > MAX_WARNINGS {
            out.push(format!(
                "cwii: {} more warnings not shown",
                total - (MAX_WARNINGS - 1)
            ));
        }
        out
    }
}

fn bound(line: &str) -> String {
    // Control characters would break the one-line-per-warning format.
    let clean: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= MAX_WARNING_CHARS {
        return clean;
    }
    let mut cut: String = clean.chars().take(MAX_WARNING_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_and_many_are_summarised() {
        let mut w = Warnings::default();
        w.push("x".repeat(1000));
        for i in 0..30 {
            w.push(format!("line {i}"));
        }
        let out = w.finish();
        assert_eq!(out.len(), MAX_WARNINGS);
        assert_eq!(out[0].chars().count(), MAX_WARNING_CHARS);
        assert!(out[0].ends_with('…'));
        assert_eq!(out[19], "cwii: 12 more warnings not shown");
        assert!(out.iter().all(|l| l.chars().count() <= MAX_WARNING_CHARS));
    }

    #[test]
    fn duplicates_and_newlines() {
        let mut w = Warnings::default();
        w.push("a\nb".into());
        w.push("a\nb".into());
        assert_eq!(w.finish(), vec!["a b".to_string()]);
    }

    #[test]
    fn exactly_the_limit_is_not_summarised() {
        let mut w = Warnings::default();
        for i in 0..MAX_WARNINGS {
            w.push(format!("{i}"));
        }
        let out = w.finish();
        assert_eq!(out.len(), MAX_WARNINGS);
        assert_eq!(out[19], "19");
    }
}
