//! The outcome of one case on one runtime.

use serde::{Deserialize, Serialize};

/// Which of two rules a runtime followed, for cases where the spec and runc
/// differ and both are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    Spec,
    Runc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "detail", rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    /// Passed by following one of two accepted rules; the string says how.
    PassAs(Rule, String),
    Fail(String),
    Skip(String),
}

impl Verdict {
    pub fn is_fail(&self) -> bool {
        matches!(self, Verdict::Fail(_))
    }
    /// Short word for a table cell.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::PassAs(Rule::Spec, _) => "pass (spec)",
            Verdict::PassAs(Rule::Runc, _) => "pass (runc behaviour)",
            Verdict::Fail(_) => "FAIL",
            Verdict::Skip(_) => "skip",
        }
    }
    /// The reason of a failure or skip, or how a two-rule case was passed.
    pub fn detail(&self) -> &str {
        match self {
            Verdict::Pass => "",
            Verdict::PassAs(_, s) | Verdict::Fail(s) | Verdict::Skip(s) => s,
        }
    }
}

pub fn fail(msg: impl Into<String>) -> Verdict {
    Verdict::Fail(msg.into())
}

pub fn skip(msg: impl Into<String>) -> Verdict {
    Verdict::Skip(msg.into())
}

/// What a case function returns. `Err` is an early exit (a failure found
/// on the way, or a skip); `Ok` is the final verdict.
pub type R = Result<Verdict, Verdict>;

/// `check!(cond, "why it failed {}", x)`: return a failure unless `cond`.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::verdict::Verdict::Fail(format!($($fmt)+)));
        }
    };
}

/// `check_eq!(got, want, "what")`: fail with both values unless equal.
#[macro_export]
macro_rules! check_eq {
    ($got:expr, $want:expr, $($fmt:tt)+) => {
        match (&$got, &$want) {
            (g, w) => {
                if *g != *w {
                    return Err($crate::verdict::Verdict::Fail(format!(
                        "{}: got {:?}, want {:?}",
                        format!($($fmt)+),
                        g,
                        w
                    )));
                }
            }
        }
    };
}

/// `need!(cond, "why the host cannot")`: skip unless `cond`.
#[macro_export]
macro_rules! need {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::verdict::Verdict::Skip(format!($($fmt)+)));
        }
    };
}
