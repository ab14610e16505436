//! Fault injection: latency, throttling (429) and unavailability (503 / 500).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::log::Operation;

/// What an injected fault answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 with code `Throttled`.
    Throttle,
    /// 503 with code `ServiceUnavailable`.
    ServiceUnavailable,
    /// 500 with code `InternalServerError`.
    InternalError,
}

/// One fault rule. Rules are checked in order; the first that matches a request fires.
///
/// JSON form (for `POST /_emulator/faults`):
/// `{"kind":"throttle","retry_after_secs":1,"count":3,"operations":["wrapKey","unwrapKey"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// The answer to give.
    pub kind: FaultKind,
    /// Adds `Retry-After: <secs>` to the fault response when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// How many more requests this rule answers; `None` = every matching request until cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Only requests of these operations match; `None` = every Key Vault REST operation
    /// (the token endpoint is only affected when [`Operation::GetToken`] is listed explicitly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<Vec<Operation>>,
    /// Only requests for this key name match, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
}

impl FaultRule {
    /// A rule answering 429 `Throttled`, optionally with `Retry-After`, until cleared.
    pub fn throttle(retry_after_secs: Option<u64>) -> Self {
        Self::new(FaultKind::Throttle, retry_after_secs)
    }

    /// A rule answering 503 `ServiceUnavailable` until cleared.
    pub fn unavailable() -> Self {
        Self::new(FaultKind::ServiceUnavailable, None)
    }

    /// A rule answering 500 `InternalServerError` until cleared.
    pub fn internal_error() -> Self {
        Self::new(FaultKind::InternalError, None)
    }

    fn new(kind: FaultKind, retry_after_secs: Option<u64>) -> Self {
        Self {
            kind,
            retry_after_secs,
            count: None,
            operations: None,
            key_name: None,
        }
    }

    /// Limits the rule to the next `n` matching requests.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    /// Limits the rule to these operations.
    #[must_use]
    pub fn only(mut self, operations: impl IntoIterator<Item = Operation>) -> Self {
        self.operations = Some(operations.into_iter().collect());
        self
    }

    /// Limits the rule to wrapKey and unwrapKey.
    #[must_use]
    pub fn wrap_unwrap_only(self) -> Self {
        self.only([Operation::WrapKey, Operation::UnwrapKey])
    }

    /// Limits the rule to one key name.
    #[must_use]
    pub fn for_key(mut self, name: impl Into<String>) -> Self {
        self.key_name = Some(name.into());
        self
    }

    fn matches(&self, op: Operation, key_name: Option<&str>) -> bool {
        let op_ok = match &self.operations {
            Some(ops) => ops.contains(&op),
            None => op.is_key_vault_api(),
        };
        let name_ok = match &self.key_name {
            Some(n) => key_name == Some(n.as_str()),
            None => true,
        };
        op_ok && name_ok && self.count != Some(0)
    }
}

/// The whole fault configuration; the JSON body of `POST /_emulator/faults` (which replaces it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultConfig {
    /// Latency added to every Key Vault REST request, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Fault rules, checked in order.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

/// A fired fault: what to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FiredFault {
    pub kind: FaultKind,
    pub retry_after_secs: Option<u64>,
}

/// Thread-safe handle to the emulator's fault switches. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct FaultHandle {
    inner: Arc<Mutex<FaultConfig>>,
}

impl FaultHandle {
    fn lock(&self) -> MutexGuard<'_, FaultConfig> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the latency added to every Key Vault REST request.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    }

    /// Appends a rule.
    pub fn add(&self, rule: FaultRule) {
        self.lock().rules.push(rule);
    }

    /// The next `n` Key Vault REST requests answer 429, with `Retry-After` when given.
    pub fn throttle_next(&self, n: u32, retry_after_secs: Option<u64>) {
        self.add(FaultRule::throttle(retry_after_secs).times(n));
    }

    /// The next `n` Key Vault REST requests answer 503.
    pub fn unavailable_next(&self, n: u32) {
        self.add(FaultRule::unavailable().times(n));
    }

    /// Replaces the whole configuration.
    pub fn set(&self, config: FaultConfig) {
        *self.lock() = config;
    }

    /// The current configuration (counts show what is left).
    pub fn get(&self) -> FaultConfig {
        self.lock().clone()
    }

    /// Removes all rules and the latency.
    pub fn clear(&self) {
        *self.lock() = FaultConfig::default();
    }

    pub(crate) fn latency_for(&self, op: Operation) -> Duration {
        if op.is_key_vault_api() {
            Duration::from_millis(self.lock().latency_ms)
        } else {
            Duration::ZERO
        }
    }

    /// Finds the first matching rule, consumes one use of it and reports what to answer.
    pub(crate) fn fire(&self, op: Operation, key_name: Option<&str>) -> Option<FiredFault> {
        let mut cfg = self.lock();
        let idx = cfg.rules.iter().position(|r| r.matches(op, key_name))?;
        let rule = &mut cfg.rules[idx];
        let fired = FiredFault {
            kind: rule.kind,
            retry_after_secs: rule.retry_after_secs,
        };
        if let Some(c) = rule.count.as_mut() {
            *c -= 1;
            if *c == 0 {
                cfg.rules.remove(idx);
            }
        }
        Some(fired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rules_expire_and_scope() {
        let h = FaultHandle::default();
        h.add(FaultRule::throttle(Some(1)).times(2).wrap_unwrap_only());
        assert_eq!(h.fire(Operation::GetKey, None), None);
        assert!(h.fire(Operation::WrapKey, None).is_some());
        assert_eq!(
            h.fire(Operation::UnwrapKey, Some("x"))
                .map(|f| f.retry_after_secs),
            Some(Some(1))
        );
        assert_eq!(h.fire(Operation::WrapKey, None), None);
        h.add(FaultRule::unavailable());
        assert!(h.fire(Operation::GetKey, None).is_some());
        assert!(h.fire(Operation::GetKey, None).is_some());
        assert_eq!(h.fire(Operation::GetToken, None), None);
        h.clear();
        assert_eq!(h.fire(Operation::GetKey, None), None);
        let json =
            r#"{"latency_ms":5,"rules":[{"kind":"throttle","count":1,"operations":["wrapKey"]}]}"#;
        let cfg: FaultConfig = serde_json::from_str(json).unwrap_or_default();
        assert_eq!(cfg.latency_ms, 5);
        assert_eq!(cfg.rules[0].operations, Some(vec![Operation::WrapKey]));
    }
}
