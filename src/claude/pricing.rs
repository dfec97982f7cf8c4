//! Approximate cost of a conversation, in US dollars.
//!
//! The one price table in vigil. Prices are list prices per million tokens
//! by model family, as published when this was written; they change, and
//! batch, regional or negotiated prices differ. Shown as "≈ $x", never as a bill.

use super::types::Usage;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Uncached input.
    pub input: f64,
    /// Output.
    pub output: f64,
    /// Cache writes (5-minute cache: 1.25 × input).
    pub cache_write: f64,
    /// Cache reads (0.1 × input).
    pub cache_read: f64,
}

const fn price(input: f64, output: f64) -> Price {
    Price { input, output, cache_write: input * 1.25, cache_read: input * 0.1 }
}

/// The price of a model, by family; unknown models are priced as Sonnet.
pub fn price_of(model: &str) -> Price {
    let m = model.to_ascii_lowercase();
    if m.contains("opus-4-5") || m.contains("opus-4.5") {
        price(5.0, 25.0)
    } else if m.contains("opus") {
        price(15.0, 75.0)
    } else if m.contains("haiku") {
        price(1.0, 5.0)
    } else {
        price(3.0, 15.0)
    }
}

/// The approximate cost of `usage` on `model`.
pub fn cost_usd(model: &str, usage: &Usage) -> f64 {
    let p = price_of(model);
    (usage.input_tokens as f64 * p.input
        + usage.output_tokens as f64 * p.output
        + usage.cache_creation_input_tokens as f64 * p.cache_write
        + usage.cache_read_input_tokens as f64 * p.cache_read)
        / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sonnet_prices_and_cache_discounts() {
        let p = price_of("claude-sonnet-4-5");
        assert_eq!((p.input, p.output, p.cache_write), (3.0, 15.0, 3.75));
        assert!((p.cache_read - 0.30).abs() < 1e-9);
        let u = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 1_000_000,
        };
        assert!((cost_usd("claude-sonnet-4-5", &u) - 18.3).abs() < 1e-9);
        assert_eq!(price_of("claude-opus-4-1").output, 75.0);
        assert_eq!(price_of("claude-haiku-4-5").input, 1.0);
    }
}
