//! What the benchmark reads from /proc: a process's resident memory and CPU time, and
//! how busy each core was (to tell how loaded the machine was during a run).

use std::fs;
use std::io;

/// Clock ticks per second in /proc (USER_HZ: 100 on every Linux architecture the
/// benchmark runs on).
const TICKS_PER_SEC: f64 = 100.0;

/// Resident set size of `pid`, in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::other(format!("no VmRSS for pid {pid}")))
}

/// CPU time of a process (all its threads), in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTime {
    /// In user space.
    pub user: f64,
    /// In the kernel on its behalf: system calls and, with tick-based accounting, the
    /// softirqs that ran in its context (the loopback TCP input of what it sends).
    pub system: f64,
}

impl CpuTime {
    pub fn total(self) -> f64 {
        self.user + self.system
    }
}

impl std::ops::Sub for CpuTime {
    type Output = CpuTime;
    fn sub(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user - earlier.user,
            system: self.system - earlier.system,
        }
    }
}

/// User and system CPU time of `pid`.
pub fn cpu_time(pid: u32) -> io::Result<CpuTime> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses; fields restart after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("bad /proc/pid/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 overall, so utime (14) and stime (15) are at 11 and 12.
    let seconds = |i: usize| -> io::Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|t| t as f64 / TICKS_PER_SEC)
            .ok_or_else(|| io::Error::other("bad /proc/pid/stat field"))
    };
    Ok(CpuTime {
        user: seconds(11)?,
        system: seconds(12)?,
    })
}

/// User + system CPU time of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    cpu_time(pid).map(CpuTime::total)
}

/// Sum of [`cpu_time`] over `pids` (0 when there are none).
pub fn cpu_time_all(pids: &[u32]) -> CpuTime {
    let times = pids.iter().filter_map(|&pid| cpu_time(pid).ok());
    times.fold(CpuTime::default(), |sum, t| CpuTime {
        user: sum.user + t.user,
        system: sum.system + t.system,
    })
}

/// Sum of [`cpu_seconds`] over `pids` (0 when there are none).
pub fn cpu_seconds_all(pids: &[u32]) -> f64 {
    cpu_time_all(pids).total()
}

/// Sum of [`rss_bytes`] over `pids`.
pub fn rss_all(pids: &[u32]) -> io::Result<u64> {
    pids.iter().map(|&pid| rss_bytes(pid)).sum()
}

/// Busy, softirq and total ticks of each core (`cpuN` lines of /proc/stat).
#[derive(Clone, Debug, Default)]
pub struct CoreTimes(Vec<(u64, u64, u64)>);

impl CoreTimes {
    pub fn read() -> CoreTimes {
        let Ok(stat) = fs::read_to_string("/proc/stat") else {
            return CoreTimes::default();
        };
        let cores = stat
            .lines()
            .filter(|line| {
                line.starts_with("cpu") && line.as_bytes().get(3).is_some_and(u8::is_ascii_digit)
            })
            .map(|line| {
                let ticks: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse().ok())
                    .collect();
                let total: u64 = ticks.iter().take(8).sum();
                // idle (3) and iowait (4) are not busy; softirq is field 6.
                let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
                (total.saturating_sub(field(3) + field(4)), field(6), total)
            })
            .collect();
        CoreTimes(cores)
    }

    /// The busy fraction of each core between `self` (earlier) and `later`.
    pub fn busy_since(&self, later: &CoreTimes) -> Vec<f64> {
        self.fraction_since(later, |&(busy, _, _)| busy)
    }

    /// The fraction of each core spent in softirqs between `self` and `later`. On
    /// loopback, the receiving side's TCP processing runs as a softirq in the
    /// sender's context (and, unless the kernel has CONFIG_IRQ_TIME_ACCOUNTING, in the
    /// sender's own system time too).
    pub fn softirq_since(&self, later: &CoreTimes) -> Vec<f64> {
        self.fraction_since(later, |&(_, softirq, _)| softirq)
    }

    fn fraction_since(&self, later: &CoreTimes, part: fn(&(u64, u64, u64)) -> u64) -> Vec<f64> {
        self.0
            .iter()
            .zip(&later.0)
            .map(|(before, after)| {
                let total = after.2.saturating_sub(before.2);
                if total == 0 {
                    0.0
                } else {
                    part(after).saturating_sub(part(before)) as f64 / total as f64
                }
            })
            .collect()
    }
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Open file descriptors of `pid` (entries of /proc/PID/fd).
pub fn open_fds(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// The soft `Max open files` limit of `pid`, from /proc/PID/limits (`None` if unlimited
/// or unreadable).
pub fn nofile_limit(pid: u32) -> Option<u64> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The machine's TCP socket counters (the `TCP:` line of /proc/net/sockstat).
#[derive(Clone, Copy, Debug, Default)]
pub struct SockStat {
    pub inuse: u64,
    pub orphan: u64,
    pub time_wait: u64,
    /// Socket buffer memory, in pages (what `tcp_mem` limits).
    pub mem_pages: u64,
}

impl SockStat {
    pub fn read() -> SockStat {
        let text = fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
        let mut stat = SockStat::default();
        if let Some(line) = text.lines().find_map(|l| l.strip_prefix("TCP:")) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            for pair in fields.chunks_exact(2) {
                let value = pair[1].parse().unwrap_or(0);
                match pair[0] {
                    "inuse" => stat.inuse = value,
                    "orphan" => stat.orphan = value,
                    "tw" => stat.time_wait = value,
                    "mem" => stat.mem_pages = value,
                    _ => {}
                }
            }
        }
        stat
    }

    /// Socket buffer memory in bytes (4 KiB pages).
    pub fn mem_bytes(&self) -> u64 {
        self.mem_pages * 4096
    }
}

/// Kernel slab memory in use over all caches (`active_objs × objsize` of
/// /proc/slabinfo), in bytes: where a socket's own structures live (`TCP`, `filp`,
/// `sock_inode_cache`, epoll items, …). `None` when /proc/slabinfo is not readable
/// (it is root-only).
pub fn slab_bytes() -> Option<u64> {
    let text = fs::read_to_string("/proc/slabinfo").ok()?;
    let total = text
        .lines()
        .skip(2)
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let active: u64 = fields.next()?.parse().ok()?;
            let _total: u64 = fields.next()?.parse().ok()?;
            let size: u64 = fields.next()?.parse().ok()?;
            Some(active * size)
        })
        .sum();
    Some(total)
}

/// The kernel's TCP memory thresholds in pages (`net.ipv4.tcp_mem`: low, pressure, max).
pub fn tcp_mem_pages() -> Option<[u64; 3]> {
    let text = fs::read_to_string("/proc/sys/net/ipv4/tcp_mem").ok()?;
    let mut values = text.split_whitespace().filter_map(|v| v.parse().ok());
    Some([values.next()?, values.next()?, values.next()?])
}
