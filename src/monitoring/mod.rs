//! The opt-in monitoring add-on (issue 13): Prometheus, Alertmanager, Grafana, node-exporter,
//! kube-state-metrics and the JMX exporter agent on the stack's JVMs. `content` owns what they
//! are configured with (scrape configuration, alerts, dashboards, JMX rules) as pure text; it
//! must not know the Spec, render manifests or talk to a cluster.

pub mod content;
