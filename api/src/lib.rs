//! The Istio-compatible config model of sluice.
