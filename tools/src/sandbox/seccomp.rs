//! The worker's seccomp filter: the system calls no reader needs, refused with `EPERM`.
//!
//! The filter is a deny list on top of the other layers, aimed at what they do
//! not cover: reading or steering another process (`ptrace`,
//! `process_vm_readv/writev`, `pidfd_getfd`), changing the system (`mount`,
//! `reboot`, `kexec_*`, modules, swap, the clock), leaving the sandbox's
//! namespaces (`setns`, `unshare`), kernel attack surface a reader never uses
//! (`bpf`, `perf_event_open`, `open_by_handle_at`, `io_uring_*`, `userfaultfd`),
//! changing kernel keys (`add_key`, `request_key`, every `keyctl` operation but
//! reading), typing into a terminal (`ioctl` `TIOCSTI`, `TIOCLINUX`, compared on
//! the low 32 bits of the request as the kernel does), and `truncate(2)` by
//! path, which Landlock only governs from ABI 3. A refused call fails with
//! `EPERM`, so a program probing for a feature carries on; nothing is killed.
//! On x86-64, x32 system call numbers are refused as a whole, so the list
//! cannot be side-stepped through them.
//!
//! The filter is compiled by `seccompiler` when prepared and installed with one
//! `seccomp(2)` call (after `no_new_privs`), so installing works in a `pre_exec` hook.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    sock_filter,
};

use super::{Layer, SeccompHeld};

/// `ioctl` requests that type into a terminal or drive the Linux console.
pub const TIOCSTI: u64 = 0x5412;
/// `TIOCLINUX`: console selection paste and other console commands.
pub const TIOCLINUX: u64 = 0x541C;

/// `keyctl` operations that only read: get a keyring's id, describe, read, get the
/// security label, ask for the capabilities. Every other operation is refused.
const KEYCTL_READ_OPS: [u64; 5] = [0, 6, 11, 17, 31];

/// A compiled filter, ready to install (or why there is none).
#[derive(Debug)]
pub struct Filter {
    program: Result<BpfProgram, String>,
    denied: Vec<String>,
}

/// The system calls refused outright, by name and number.
#[cfg(target_arch = "x86_64")]
fn denied_syscalls() -> Vec<(&'static str, i64)> {
    vec![
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("pidfd_getfd", libc::SYS_pidfd_getfd),
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("pivot_root", libc::SYS_pivot_root),
        ("fsopen", libc::SYS_fsopen),
        ("fsmount", libc::SYS_fsmount),
        ("move_mount", libc::SYS_move_mount),
        ("open_tree", libc::SYS_open_tree),
        ("reboot", libc::SYS_reboot),
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
        ("settimeofday", libc::SYS_settimeofday),
        ("clock_settime", libc::SYS_clock_settime),
        ("clock_adjtime", libc::SYS_clock_adjtime),
        ("adjtimex", libc::SYS_adjtimex),
        ("setns", libc::SYS_setns),
        ("unshare", libc::SYS_unshare),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key),
        ("truncate", libc::SYS_truncate),
    ]
}

impl Filter {
    /// The worker's filter (see the module documentation).
    #[cfg(target_arch = "x86_64")]
    pub fn worker() -> Filter {
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        let mut denied: Vec<String> = Vec::new();
        for (name, nr) in denied_syscalls() {
            rules.insert(nr, Vec::new());
            denied.push(name.to_string());
        }
        let built = (|| -> Result<BpfProgram, seccompiler::BackendError> {
            let request = |v: u64| SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, v);
            rules.insert(
                libc::SYS_ioctl,
                vec![SeccompRule::new(vec![request(TIOCSTI)?])?, SeccompRule::new(vec![request(TIOCLINUX)?])?],
            );
            // keyctl: refused unless the operation (argument 0) is one that only reads.
            let not_read = KEYCTL_READ_OPS
                .iter()
                .map(|op| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *op))
                .collect::<Result<Vec<_>, _>>()?;
            rules.insert(libc::SYS_keyctl, vec![SeccompRule::new(not_read)?]);
            let filter = SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(libc::EPERM as u32),
                seccompiler::TargetArch::x86_64,
            )?;
            BpfProgram::try_from(filter)
        })();
        denied.extend(["ioctl TIOCSTI".to_string(), "ioctl TIOCLINUX".into(), "keyctl (all but reading)".into()]);
        let program = built.map(|p| [x32_prefix(), p].concat()).map_err(|e| format!("the filter did not compile: {e}"));
        Filter { program, denied }
    }

    /// No filter on this architecture.
    #[cfg(not(target_arch = "x86_64"))]
    pub fn worker() -> Filter {
        Filter {
            program: Err(format!("vigil has no seccomp filter for {} yet", std::env::consts::ARCH)),
            denied: Vec::new(),
        }
    }

    /// Install the filter on the calling thread (`no_new_privs` first, as the kernel
    /// requires without `CAP_SYS_ADMIN`). Only system calls: safe after `fork`.
    pub fn install(&self) -> Result<(), i32> {
        let Ok(program) = &self.program else { return Err(libc::ENOSYS) };
        let len = u16::try_from(program.len()).map_err(|_| libc::E2BIG)?;
        let prog = libc::sock_fprog { len, filter: program.as_ptr() as *mut libc::sock_filter };
        // SAFETY: prctl takes integers; seccomp copies the program we own (same layout as
        // libc::sock_filter: u16, u8, u8, u32, repr(C)) before returning.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(errno());
            }
            if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0u32, &prog as *const libc::sock_fprog)
                != 0
            {
                return Err(errno());
            }
        }
        Ok(())
    }

    /// What the filter holds once [`Filter::install`] returned `installed`.
    pub fn status(&self, installed: Result<(), i32>) -> Layer<SeccompHeld> {
        match (&self.program, installed) {
            (Err(why), _) => Layer::NotHeld(why.clone()),
            (Ok(_), Err(e)) => Layer::NotHeld(format!(
                "the seccomp filter could not be installed: {}",
                std::io::Error::from_raw_os_error(e)
            )),
            (Ok(_), Ok(())) => Layer::Held(SeccompHeld { denied: self.denied.clone() }),
        }
    }
}

/// `if (nr >= 0x40000000) return EPERM;`: refuse every x32 system call, whose numbers
/// would otherwise slip past a list of x86-64 numbers (same architecture tag).
#[cfg(target_arch = "x86_64")]
fn x32_prefix() -> Vec<sock_filter> {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JGE_K: u16 = 0x35;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    vec![
        sock_filter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: 0 },
        sock_filter { code: BPF_JMP_JGE_K, jt: 0, jf: 1, k: X32_SYSCALL_BIT },
        sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_ERRNO | libc::EPERM as u32 },
    ]
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EPERM)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_and_names_what_it_refuses() {
        let f = Filter::worker();
        let p = f.program.as_ref().unwrap();
        assert!(p.len() > 40 && p.len() < u16::MAX as usize);
        for name in ["ptrace", "mount", "unshare", "io_uring_setup", "ioctl TIOCSTI", "keyctl (all but reading)"] {
            assert!(f.denied.iter().any(|d| d == name), "{name} missing from {:?}", f.denied);
        }
    }
}
