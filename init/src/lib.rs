//! sluice-init.
