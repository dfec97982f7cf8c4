//! What the model reads of a tool's result: a compact view beside the agent,
//! so the tools crate knows nothing about any model.
//!
//! Reviews, reports and `vigil tools run` show a result whole
//! (`ToolResult::to_value`); the model gets findings as
//! `[severity, id, subject, title, evidence…, "fix: …"]` with evidence capped
//! at one line and long texts clipped, so a whole review fits a small token
//! budget. The full text stays in the review.

use serde_json::Value;
use vigil_tools::ToolResult;

/// Longest evidence line, title and remediation the model is sent (characters).
const MODEL_TEXT_MAX: usize = 140;
/// Evidence lines per finding the model is sent.
const MODEL_EVIDENCE_MAX: usize = 1;

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{}…", cut.trim_end())
}

/// The model's view of a tool result.
pub trait ModelView {
    /// The compact form the model reads: findings as rows, facts whole.
    fn to_model_value(&self) -> Value;
}

impl ModelView for ToolResult {
    fn to_model_value(&self) -> Value {
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let mut row = vec![
                    Value::from(f.severity.as_str()),
                    Value::from(f.id.as_str()),
                    Value::from(f.subject.as_str()),
                    Value::from(clip(&f.title, MODEL_TEXT_MAX)),
                ];
                row.extend(f.evidence.iter().take(MODEL_EVIDENCE_MAX).map(|e| Value::from(clip(e, MODEL_TEXT_MAX))));
                if f.evidence.len() > MODEL_EVIDENCE_MAX {
                    row.push(Value::from(format!("(+{} more)", f.evidence.len() - MODEL_EVIDENCE_MAX)));
                }
                if !f.remediation.is_empty() {
                    row.push(Value::from(format!("fix: {}", clip(&f.remediation, MODEL_TEXT_MAX))));
                }
                Value::Array(row)
            })
            .collect();
        serde_json::json!({
            "findings_format": "[severity, id, subject, title, evidence..., fix]",
            "findings": findings,
            "facts": self.facts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_tools::{Category, Finding, Severity};

    #[test]
    fn the_model_view_is_compact_and_keeps_what_matters() {
        let long = "x".repeat(500);
        let f = Finding::new(
            "ports.exposed-datastore",
            Severity::Critical,
            Category::Ports,
            "tcp:9200",
            "Elasticsearch is public",
        )
        .evidence("0.0.0.0:9200/tcp by java (pid 800)")
        .evidence("second line")
        .fix(long.clone());
        let r = ToolResult { facts: serde_json::json!({"n": 1}), findings: vec![f] };
        let v = r.to_model_value();
        let row = v["findings"][0].as_array().unwrap();
        assert_eq!(row[0], "critical");
        assert_eq!(row[2], "tcp:9200");
        assert_eq!(row[4], "0.0.0.0:9200/tcp by java (pid 800)", "the first evidence line is kept whole");
        assert_eq!(row[5], "(+1 more)");
        assert!(row[6].as_str().unwrap().starts_with("fix: ") && row[6].as_str().unwrap().chars().count() < 150);
        assert_eq!(v["facts"]["n"], 1);
        assert!(serde_json::to_string(&v).unwrap().len() < serde_json::to_string(&r.to_value()).unwrap().len());
    }
}
