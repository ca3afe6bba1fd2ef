//! sluice-proxy: the data plane.
