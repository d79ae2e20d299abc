//! The opt-in monitoring add-on (issue 13): Prometheus, Alertmanager, Grafana, node-exporter,
//! kube-state-metrics, kafka_exporter and the JMX exporter agent on the stack's JVMs. `content`
//! owns what they are configured with (scrape configuration, alerts, dashboards, JMX rules) as
//! pure text; it must not know the Spec, render manifests or talk to a cluster. `deploy` owns
//! how they run on the cluster (the manifest of `templates/monitoring/monitoring.yaml.j2`,
//! pinned images, sizes, the workloads `up` waits for, the JMX agent on Kafka and Cassandra,
//! Spark's servlet, the Grafana admin Secret's script); `live` reads back what the cluster
//! answers (firing alerts, the Secret, the port-forward). Neither opens a connection:
//! `ops::monitoring` runs them over `remote::Fleet`.

pub mod content;
pub mod deploy;
pub mod live;
