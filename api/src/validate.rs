//! Validation of loaded resources, following Istio's published rules, and the
//! cross-resource analysis that turns likely mistakes into warnings.
//!
//! Runs once, at load time; the request path only ever sees validated config.

mod analyze;
mod destination_rule;
mod fields;
mod gateway;
mod mesh_config;
mod release_policy;
mod service_entry;
mod virtual_service;

pub use crate::net::parse_cidr;

use crate::diagnostic::{Diagnostic, Severity};
use crate::load::ConfigSet;
use crate::resource::{Resource, Spec};

/// Checks every resource of the set and the set as a whole, appending the
/// findings to `set.diagnostics`.
pub fn validate(set: &mut ConfigSet) {
    let mut found = Vec::new();
    for resource in &set.resources {
        let mut f = Findings {
            resource,
            out: &mut found,
        };
        match &resource.spec {
            Spec::VirtualService(vs) => virtual_service::check(vs, &mut f),
            Spec::DestinationRule(dr) => destination_rule::check(dr, &mut f),
            Spec::ServiceEntry(se) => service_entry::check(se, &mut f),
            Spec::Gateway(gw) => gateway::check(gw, &resource.meta.name, &mut f),
            Spec::MeshConfig(mc) => mesh_config::check(mc, &mut f),
            Spec::ReleasePolicy(rp) => release_policy::check(rp, &mut f),
        }
        fields::check_meta(resource, &mut f);
    }
    analyze::analyze(&set.resources, &mut found);
    set.diagnostics.extend(found);
}

/// Collects the findings about one resource.
pub(crate) struct Findings<'a> {
    resource: &'a Resource,
    out: &'a mut Vec<Diagnostic>,
}

impl Findings<'_> {
    fn push(&mut self, severity: Severity, path: &str, message: String) {
        let d = Diagnostic::new(severity, &self.resource.origin, message)
            .subject(self.resource.title())
            .at(path);
        self.out.push(d);
    }

    /// The resource is invalid.
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, path, message.into());
    }

    /// The namespace of the resource.
    pub(crate) fn namespace(&self) -> &str {
        self.resource.meta.namespace()
    }

    /// The resource is accepted but likely wrong.
    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Warning, path, message.into());
    }
}
