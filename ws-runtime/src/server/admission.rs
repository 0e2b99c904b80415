//! Admission limits: how many connections a socket holds, overall and per client IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use http::StatusCode;

use crate::handshake::Reject;

/// Counts the connections of one socket, from the accepted handshake to the end of the
/// connection task.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    /// Takes a place for a connection from `ip`, or says why not: 503 when the socket is full,
    /// 429 when this address already holds its share.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: Option<usize>,
        max_per_ip: Option<usize>,
    ) -> Result<Slot, Reject> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if max_total.is_some_and(|max| counts.total >= max) {
            return Err(Reject::with_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many connections.",
            )
            .header("retry-after", "5"));
        }
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if max_per_ip.is_some_and(|max| from_ip >= max) {
            return Err(Reject::with_body(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many connections from your address.",
            )
            .header("retry-after", "5"));
        }
        counts.total += 1;
        *counts.per_ip.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            admission: self.clone(),
            ip,
        })
    }

    /// Connections currently admitted.
    #[cfg(test)]
    fn total(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .admission
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total -= 1;
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_freed() {
        let admission = Arc::new(Admission::default());
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = admission.admit(a, Some(3), Some(2)).unwrap();
        let _second = admission.admit(a, Some(3), Some(2)).unwrap();
        let refused = admission.admit(a, Some(3), Some(2)).unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let _third = admission.admit(b, Some(3), Some(2)).unwrap();
        let full = admission.admit(b, Some(3), Some(2)).unwrap_err();
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(first);
        assert_eq!(admission.total(), 2);
        assert!(admission.admit(a, Some(3), Some(2)).is_ok());
        assert!(admission.admit(a, None, None).is_ok());
    }
}
