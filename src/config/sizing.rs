//! What the configured CPU requests and JVM heaps amount to: whole cores of a CPU request and
//! the memory budget of a JVM container. Pure arithmetic on validated values. `config::stack`
//! refuses a heap whose budget does not fit its container; `stack` renders the same budget as
//! JVM flags, so what is validated is what runs. Must not know templates or manifests.

use serde::Serialize;

/// Which JVM a [`JvmMemory`] budget is for: the two differ in how much direct memory they use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jvm {
    Kafka,
    Cassandra,
}

/// Every memory pool of a JVM that a flag can bound, and the threads sized from the CPU, derived
/// from the configured heap and CPU request. `total_mib` must fit the container's memory limit:
/// `config` refuses a heap whose budget does not (the rest of the limit is the page cache's, and
/// Cassandra's native off-heap structures').
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct JvmMemory {
    pub heap_mib: u32,
    /// `-XX:MaxDirectMemorySize`. Unset, HotSpot allows as much as the heap, and Cassandra 5.0's
    /// cassandra-env.sh sets a quarter of the host's RAM.
    pub direct_mib: u32,
    /// `-XX:MaxMetaspaceSize` (unbounded by default).
    pub metaspace_mib: u32,
    /// `-XX:ReservedCodeCacheSize`: the JDK's own default with tiered compilation, made explicit
    /// so that it is counted.
    pub code_cache_mib: u32,
    /// Thread stacks, GC bookkeeping, the class-data archive and malloc: no flag bounds these.
    pub overhead_mib: u32,
    /// `-XX:ActiveProcessorCount` and `-XX:ParallelGCThreads`: the CPU request rounded up, at
    /// least 2. Without it the JVM sizes its GC and every thread pool from the host's cores (the
    /// containers set no CPU limit).
    pub processors: u32,
    /// `-XX:ConcGCThreads`.
    pub conc_gc_threads: u32,
    /// The sum of the pools above: what the JVM may use at most, in MiB.
    pub total_mib: u32,
}

/// Not bounded by any flag; measured use is well below it for both JVMs at these heap sizes.
pub const JVM_OVERHEAD_MIB: u32 = 256;
/// The JDK default of `-XX:ReservedCodeCacheSize` with tiered compilation (240m).
pub const JVM_CODE_CACHE_MIB: u32 = 240;

impl JvmMemory {
    pub fn new(jvm: Jvm, heap_mib: u32, cpu: &str) -> JvmMemory {
        let processors = cpu_cores(cpu).clamp(2, 64);
        let (direct_mib, metaspace_mib, conc_gc_threads) = match jvm {
            // Netty (client and internode), the chunk cache and the networking buffer pool:
            // cassandra.yaml sizes the last two from the heap (1/4 and 1/16 of it by default).
            // Cassandra sets ConcGCThreads equal to ParallelGCThreads (cassandra-env.sh).
            Jvm::Cassandra => ((heap_mib / 2).max(256), 256, processors),
            // Socket I/O goes through per-thread temporary direct buffers. HotSpot's own
            // ConcGCThreads rule: (ParallelGCThreads + 2) / 4.
            Jvm::Kafka => ((heap_mib / 4).max(128), 192, ((processors + 2) / 4).max(1)),
        };
        JvmMemory {
            heap_mib,
            direct_mib,
            metaspace_mib,
            code_cache_mib: JVM_CODE_CACHE_MIB,
            overhead_mib: JVM_OVERHEAD_MIB,
            processors,
            conc_gc_threads,
            total_mib: heap_mib + direct_mib + metaspace_mib + JVM_CODE_CACHE_MIB + JVM_OVERHEAD_MIB,
        }
    }

    /// The bounds as JVM flags (not the heap: each image has its own variable for it). Next to
    /// the pools so that a pool added to the budget cannot be left out of the flags.
    pub fn flags(&self) -> String {
        format!(
            "-XX:MaxDirectMemorySize={}m -XX:MaxMetaspaceSize={}m -XX:ReservedCodeCacheSize={}m -XX:ActiveProcessorCount={} -XX:ParallelGCThreads={} -XX:ConcGCThreads={}",
            self.direct_mib,
            self.metaspace_mib,
            self.code_cache_mib,
            self.processors,
            self.processors,
            self.conc_gc_threads
        )
    }
}

/// Whole cores for a CPU request (`1500m` and `1.5` give 2).
pub fn cpu_cores(cpu: &str) -> u32 {
    let cores = match cpu.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().map(|m| m / 1000.0),
        None => cpu.parse::<f64>(),
    };
    // A CPU request is validated to be at most 192 cores, so the cast cannot truncate.
    cores.map_or(1, |c| c.ceil().max(1.0) as u32)
}
