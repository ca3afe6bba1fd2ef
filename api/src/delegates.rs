//! The VirtualServices rules may delegate to (those without hosts), found by
//! namespace and name as Istio finds them. Validation reports missing
//! delegates from this index; the model merges the delegates' rules.

use std::collections::HashMap;

use crate::istio::VirtualService;
use crate::istio::virtual_service::Delegate;
use crate::resource::{Resource, Spec};

/// The VirtualServices rules may delegate to, by namespace and name.
#[derive(Debug, Default)]
pub struct Delegates<'a> {
    by_name: HashMap<(&'a str, &'a str), (&'a Resource, &'a VirtualService)>,
}

impl<'a> Delegates<'a> {
    /// The delegate VirtualServices (those without hosts) among `resources`.
    pub fn index(resources: &'a [Resource]) -> Delegates<'a> {
        let by_name = resources
            .iter()
            .filter_map(|r| match &r.spec {
                Spec::VirtualService(vs) if vs.hosts.is_empty() => {
                    Some(((r.meta.namespace(), r.meta.name.as_str()), (r, vs)))
                }
                _ => None,
            })
            .collect();
        Delegates { by_name }
    }

    /// The delegate `d` names from a root in namespace `ns`, if it exists
    /// and its `exportTo` lets the root's namespace see it (as in Istio).
    pub fn find(&self, d: &Delegate, ns: &str) -> Option<&'a VirtualService> {
        let at = d.namespace.as_deref().unwrap_or(ns);
        let (r, vs) = self.by_name.get(&(at, d.name.as_str()))?;
        r.visible_from(ns).then_some(*vs)
    }
}
