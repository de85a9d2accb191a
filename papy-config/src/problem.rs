//! [`Problem`]: one thing wrong with a pipeline file, with where it is.

use std::fmt;

/// Where a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A position in the user's file (1-based line and column).
    File {
        /// Line, from 1.
        line: usize,
        /// Column, from 1.
        col: usize,
    },
    /// A `--set KEY=VALUE` override (the whole argument).
    Set(String),
    /// The file as a whole.
    Nowhere,
}

/// A problem found in a pipeline file.
///
/// ```
/// use papy_config::{Origin, Problem};
/// let p = Problem { origin: Origin::File { line: 3, col: 5 }, message: "bad".into() };
/// assert_eq!(p.render("a.toml"), "a.toml:3:5: bad");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is.
    pub origin: Origin,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem of the file as a whole.
    pub fn whole(message: impl Into<String>) -> Problem {
        Problem {
            origin: Origin::Nowhere,
            message: message.into(),
        }
    }

    /// Sorts problems as `papy check` prints them: those of the file as a
    /// whole first, then by position in the file (line, then column), then
    /// those of `--set` arguments; the order found is kept among equals.
    ///
    /// ```
    /// use papy_config::{Origin, Problem};
    /// let at = |line, col| Problem { origin: Origin::File { line, col }, message: String::new() };
    /// let mut ps = vec![at(22, 80), at(3, 1), at(22, 65)];
    /// Problem::sort(&mut ps);
    /// assert_eq!(ps, vec![at(3, 1), at(22, 65), at(22, 80)]);
    /// ```
    pub fn sort(problems: &mut [Problem]) {
        problems.sort_by_key(|p| match &p.origin {
            Origin::Nowhere => (0, 0, 0),
            Origin::File { line, col } => (1, *line, *col),
            Origin::Set(_) => (2, 0, 0),
        });
    }

    /// `file:line:col: message`, `file: --set K=V: message` or `file: message`.
    pub fn render(&self, file: &str) -> String {
        match &self.origin {
            Origin::File { line, col } => format!("{file}:{line}:{col}: {}", self.message),
            Origin::Set(s) => format!("{file}: --set {s}: {}", self.message),
            Origin::Nowhere => format!("{file}: {}", self.message),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File { line, col } => write!(f, "{line}:{col}: {}", self.message),
            Origin::Set(s) => write!(f, "--set {s}: {}", self.message),
            Origin::Nowhere => f.write_str(&self.message),
        }
    }
}

/// The known word closest to `word`, if one is close enough to be a typo.
///
/// ```
/// use papy_config::schema::did_you_mean;
/// assert_eq!(did_you_mean("stirde", ["stride", "buffer"]), Some("stride"));
/// assert_eq!(did_you_mean("zzz", ["stride", "buffer"]), None);
/// ```
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Names come from the user's file: long ones get no suggestion, which
    // bounds the quadratic edit distance.
    const LONGEST: usize = 64;
    if word.len() > LONGEST {
        return None;
    }
    known
        .into_iter()
        .filter(|k| k.len() <= LONGEST && k.len().abs_diff(word.len()) <= LONGEST / 3)
        .map(|k| (strsim::damerau_levenshtein(word, k), k))
        .filter(|(d, k)| *d <= (k.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}
