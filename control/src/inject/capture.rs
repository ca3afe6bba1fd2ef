//! Capture settings: the config's defaults and the pod's `traffic.sluice.dev/*` annotations,
//! turned into sluice-init's flags.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{InjectError, annotation};
use crate::config::{CaptureConfig, InjectConfig};

/// What a list may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Ports,
    /// Ports, or `*` for all.
    PortsOrAll,
    Cidrs,
    /// CIDRs or addresses, or `*` for all.
    CidrsOrAll,
}

/// A checked list: `*`, or the items in the order given, without repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum List {
    All,
    Items(Vec<String>),
}

impl List {
    fn flag_value(&self) -> String {
        match self {
            List::All => "*".into(),
            List::Items(items) => items.join(","),
        }
    }

    fn contains_port(&self, port: u16) -> bool {
        match self {
            List::All => true,
            List::Items(items) => items.iter().any(|p| p.parse() == Ok(port)),
        }
    }

    fn merged(mut self, other: List) -> List {
        match (&mut self, other) {
            (List::Items(items), List::Items(more)) => {
                for item in more {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
                self
            }
            _ => List::All,
        }
    }
}

/// Parses a comma-separated list. Ports may be container port names, resolved by `port_name`.
pub fn parse_list(
    value: &str,
    kind: ListKind,
    port_name: &dyn Fn(&str) -> Option<u16>,
) -> Result<List, String> {
    let value = value.trim();
    if value == "*" {
        return match kind {
            ListKind::PortsOrAll | ListKind::CidrsOrAll => Ok(List::All),
            _ => Err("`*` is not allowed here (only in the include lists)".into()),
        };
    }
    let mut items: Vec<String> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let item = match kind {
            ListKind::Ports | ListKind::PortsOrAll => parse_port(item, port_name)?.to_string(),
            ListKind::Cidrs | ListKind::CidrsOrAll => parse_cidr(item)?,
        };
        if !items.contains(&item) {
            items.push(item);
        }
    }
    Ok(List::Items(items))
}

fn parse_port(item: &str, port_name: &dyn Fn(&str) -> Option<u16>) -> Result<u16, String> {
    if item.bytes().all(|b| b.is_ascii_digit()) {
        return match item.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(format!("port {item} is not in 1..65535")),
        };
    }
    port_name(item).ok_or_else(|| {
        format!("{item:?} is neither a port number nor the name of a container port of the pod")
    })
}

fn parse_cidr(item: &str) -> Result<String, String> {
    if let Ok(net) = item.parse::<IpNet>() {
        return Ok(net.to_string());
    }
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    Err(format!(
        "{item:?} is not a CIDR (10.0.0.0/8, fd00::/8) or an IP address"
    ))
}

/// The capture of one pod: config defaults with the pod's annotations applied. Include lists
/// from annotations replace the default; exclude lists add to it (an operator's exclusions,
/// such as a metadata server, stay in force).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    pub inbound_ports: List,
    pub exclude_inbound_ports: List,
    pub outbound_cidrs: List,
    pub exclude_outbound_cidrs: List,
    pub exclude_outbound_ports: List,
    pub include_outbound_ports: List,
    /// Inbound ports delivered to the app on loopback ([`annotation::APP_LOOPBACK_PORTS`]).
    pub app_loopback: List,
}

impl Capture {
    /// Applies the pod's annotations to the config's defaults.
    pub fn resolve(
        config: &CaptureConfig,
        annotations: &BTreeMap<String, String>,
        port_name: &dyn Fn(&str) -> Option<u16>,
    ) -> Result<Self, InjectError> {
        let default = |value: &str, kind| {
            parse_list(value, kind, port_name).map_err(|reason| {
                InjectError::Conflict(format!("injector config capture: {reason}"))
            })
        };
        let pod = |key: &str, kind| -> Result<Option<List>, InjectError> {
            annotations
                .get(key)
                .map(|value| {
                    parse_list(value, kind, port_name).map_err(|reason| InjectError::Annotation {
                        key: key.into(),
                        value: value.clone(),
                        reason,
                    })
                })
                .transpose()
        };
        let replace = |value: &str, key: &str, kind| -> Result<List, InjectError> {
            match pod(key, kind)? {
                Some(list) => Ok(list),
                None => default(value, kind),
            }
        };
        let add = |value: &str, key: &str, kind| -> Result<List, InjectError> {
            let base = default(value, kind)?;
            Ok(match pod(key, kind)? {
                Some(list) => base.merged(list),
                None => base,
            })
        };
        use ListKind::*;
        Ok(Self {
            inbound_ports: replace(
                &config.inbound_ports,
                annotation::INCLUDE_INBOUND_PORTS,
                PortsOrAll,
            )?,
            exclude_inbound_ports: add(
                &config.exclude_inbound_ports,
                annotation::EXCLUDE_INBOUND_PORTS,
                Ports,
            )?,
            outbound_cidrs: replace(
                &config.outbound_cidrs,
                annotation::INCLUDE_OUTBOUND_CIDRS,
                CidrsOrAll,
            )?,
            exclude_outbound_cidrs: add(
                &config.exclude_outbound_cidrs,
                annotation::EXCLUDE_OUTBOUND_CIDRS,
                Cidrs,
            )?,
            exclude_outbound_ports: add(
                &config.exclude_outbound_ports,
                annotation::EXCLUDE_OUTBOUND_PORTS,
                Ports,
            )?,
            include_outbound_ports: default(&config.include_outbound_ports, Ports)?,
            app_loopback: pod(annotation::APP_LOOPBACK_PORTS, Ports)?
                .unwrap_or(List::Items(Vec::new())),
        })
    }

    /// The proxy's `--app-loopback-ports` value; empty when the pod asks for none.
    pub fn app_loopback_ports(&self) -> String {
        self.app_loopback.flag_value()
    }

    /// True when inbound connections to `port` go through the proxy.
    pub fn captures_inbound(&self, port: u16) -> bool {
        self.inbound_ports.contains_port(port) && !self.exclude_inbound_ports.contains_port(port)
    }

    /// sluice-init's arguments. Empty exclude/include lists are left out (they are the
    /// defaults); the two capture lists are always given, since empty means "capture none".
    pub fn init_args(&self, config: &InjectConfig) -> Vec<String> {
        let ports = &config.proxy.ports;
        let mut args = vec![
            format!("--proxy-uid={}", config.proxy.uid),
            format!("--proxy-gid={}", config.proxy.gid),
            format!("--outbound-port={}", ports.outbound),
            format!("--inbound-port={}", ports.inbound),
            format!("--admin-port={}", ports.admin),
            format!("--health-port={}", ports.health),
            format!("--metrics-port={}", ports.metrics),
            format!("--inbound-ports={}", self.inbound_ports.flag_value()),
            format!("--outbound-cidrs={}", self.outbound_cidrs.flag_value()),
        ];
        let optional = [
            (
                "--exclude-inbound-ports",
                self.exclude_inbound_ports.flag_value(),
            ),
            (
                "--exclude-outbound-cidrs",
                self.exclude_outbound_cidrs.flag_value(),
            ),
            (
                "--exclude-outbound-ports",
                self.exclude_outbound_ports.flag_value(),
            ),
            (
                "--include-outbound-ports",
                self.include_outbound_ports.flag_value(),
            ),
            (
                "--exclude-interfaces",
                config.capture.exclude_interfaces.replace(' ', ""),
            ),
        ];
        for (flag, value) in optional {
            if !value.is_empty() {
                args.push(format!("{flag}={value}"));
            }
        }
        args.push(format!("--mode={}", config.capture.mode));
        args.push(format!("--ipv6={}", config.capture.ipv6));
        args.push(format!("--backend={}", config.capture.backend));
        args
    }
}
