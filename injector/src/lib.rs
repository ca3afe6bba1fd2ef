//! sluice control plane and CLI.
