//! Conditions that can never hold: what `check` warns about in a route, so a
//! typo or a copy-paste does not leave a rule that silently never fires.

use super::super::model::FieldTest;

/// Why the tests on one field can never all hold, if they cannot.
///
/// Catches what a typo or a copy-paste usually produces: `exists: false`
/// beside an operator that needs the field, string and numeric operators on
/// one field, and numeric bounds that leave nothing between them. (An empty
/// list is reported where it is parsed.)
pub(super) fn contradiction(tests: &[FieldTest]) -> Option<String> {
    let absent = tests.iter().any(|t| matches!(t, FieldTest::Exists(false)));
    if absent
        && let Some(other) = tests
            .iter()
            .find(|t| !matches!(t, FieldTest::Exists(false) | FieldTest::NoneOf(_)))
    {
        return Some(format!(
            "`exists: false` with `{}`, which needs the field to be present",
            operator_name(other)
        ));
    }
    let string_op = tests.iter().find(|t| {
        matches!(
            t,
            FieldTest::Prefix(_) | FieldTest::Suffix(_) | FieldTest::Regex(_)
        )
    });
    let number_op = tests.iter().find(|t| {
        matches!(
            t,
            FieldTest::Gt(_) | FieldTest::Gte(_) | FieldTest::Lt(_) | FieldTest::Lte(_)
        )
    });
    if let (Some(s), Some(n)) = (string_op, number_op) {
        return Some(format!(
            "`{}` needs a string and `{}` needs a number",
            operator_name(s),
            operator_name(n)
        ));
    }
    // The tightest lower and upper bounds: (value, inclusive).
    let mut low: Option<(f64, bool)> = None;
    let mut high: Option<(f64, bool)> = None;
    for t in tests {
        match *t {
            FieldTest::Gt(n) => low = tighter_low(low, (n, false)),
            FieldTest::Gte(n) => low = tighter_low(low, (n, true)),
            FieldTest::Lt(n) => high = tighter_high(high, (n, false)),
            FieldTest::Lte(n) => high = tighter_high(high, (n, true)),
            _ => {}
        }
    }
    if let (Some((lo, lo_incl)), Some((hi, hi_incl))) = (low, high)
        && (lo > hi || (lo == hi && !(lo_incl && hi_incl)))
    {
        return Some(format!("no number is both above {lo} and below {hi}"));
    }
    None
}

fn tighter_low(cur: Option<(f64, bool)>, new: (f64, bool)) -> Option<(f64, bool)> {
    match cur {
        Some(c) if c.0 > new.0 || (c.0 == new.0 && !c.1) => Some(c),
        _ => Some(new),
    }
}

fn tighter_high(cur: Option<(f64, bool)>, new: (f64, bool)) -> Option<(f64, bool)> {
    match cur {
        Some(c) if c.0 < new.0 || (c.0 == new.0 && !c.1) => Some(c),
        _ => Some(new),
    }
}

fn operator_name(test: &FieldTest) -> &'static str {
    match test {
        FieldTest::OneOf(_) => "eq/in",
        FieldTest::NoneOf(_) => "not",
        FieldTest::Prefix(_) => "prefix",
        FieldTest::Suffix(_) => "suffix",
        FieldTest::Contains(_) => "contains",
        FieldTest::Regex(_) => "regex",
        FieldTest::Exists(_) => "exists",
        FieldTest::Gt(_) => "gt",
        FieldTest::Gte(_) => "gte",
        FieldTest::Lt(_) => "lt",
        FieldTest::Lte(_) => "lte",
    }
}
