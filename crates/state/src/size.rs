//! Byte counts and rates as people write them: `1500`, `64k`, `1.5M`, `2GiB`. Suffixes are
//! powers of 1024 (`k`, `M`, `G`, `T`, with or without `B`/`iB`, any case), the way every
//! BitTorrent client shows rates. Used by the command line (`--upload-limit 1M`,
//! `--piece-size 256k`) and the config file (`upload = "1M"` or `upload = 1048576`).

use serde::{Deserialize, Deserializer};

/// Parses a byte count with an optional suffix. `what` names the value in the error.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?} has an unknown unit; use a number with k, M, G or T (powers of 1024)")),
    };
    let not_a_size = || format!("{s:?} is not a size like 1500, 64k or 1.5M");
    if number.is_empty() {
        return Err(not_a_size());
    }
    let mult = 1u64 << shift;
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"));
    }
    let x: f64 = number.parse().map_err(|_| not_a_size())?;
    let bytes = x * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    if bytes.fract() != 0.0 {
        return Err(format!("{s:?} is not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

/// Serde: a size given as an integer or as a string with a suffix (see [`parse_size`]).
pub fn deserialize_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer) {
        Ok(Raw::Int(n)) => Ok(Some(n)),
        Ok(Raw::Text(s)) => parse_size(&s).map(Some).map_err(serde::de::Error::custom),
        Err(_) => Err(serde::de::Error::custom("expected a size: a number of bytes or a string like \"1M\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn plain_numbers_and_suffixes() {
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("256K"), Ok(256 << 10));
        assert_eq!(parse_size("5M"), Ok(5 << 20));
        assert_eq!(parse_size("5MiB"), Ok(5 << 20));
        assert_eq!(parse_size("1.5M"), Ok(3 << 19));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size(" 7 k "), Ok(7 << 10));
    }

    #[test]
    fn refusals_name_the_value() {
        for bad in ["", "k", "1x", "-5", "1.5", "0.3k", "99999999999999999999", "1e3", "1..2k"] {
            let e = parse_size(bad).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }
}
