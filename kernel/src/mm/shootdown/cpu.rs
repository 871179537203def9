//! This CPU as the protocol cores (lab_core::protocol) see it.

use crate::arch;

/// This CPU, as the protocol cores in lab_core::protocol see it. The
/// hardware takes interrupts by itself, so an interrupt window is nothing
/// here but a chaos point (arch::chaos), where a seeded run may delay.
pub(crate) struct ThisCpu;

impl lab_core::protocol::Cpu for ThisCpu {
    fn id(&self) -> u32 {
        arch::cpu_id()
    }

    #[inline(always)]
    fn interruptible(&self, at: lab_core::protocol::Window) {
        use crate::arch::chaos::{point, Point};
        use lab_core::protocol::Window;
        point(match at {
            Window::SlotServeClaimed => Point::ServeSeen,
            Window::SlotServeCopied => Point::SlotServeCopied,
            Window::SlotServeAcked => Point::SlotServeAcked,
            Window::SlotStartTaken => Point::SlotTaken,
            Window::DeferPush => Point::DeferPush,
            Window::LazySkip => Point::LazySkip,
            Window::MailboxSeen => Point::ServeSeen,
            Window::MailboxCopied => Point::ServeCopied,
            Window::MailboxAcked => Point::ServeAcked,
            Window::ScoreboardSeen => Point::ServeSeen,
            Window::ScoreboardCopied => Point::ServeCopied,
            Window::ScoreboardAcked => Point::ServeAcked,
            Window::ScoreboardPosted => Point::StartPosted,
            Window::BatchPublished => Point::BatchPublished,
            Window::LatrQueued => Point::LatrQueued,
            Window::LatrApplied => Point::LatrApplied,
            Window::LatrSettle => Point::LatrSettle,
        });
    }

    fn without_interrupts<R>(&self, f: impl FnOnce() -> R) -> R {
        x86_64::instructions::interrupts::without_interrupts(f)
    }

    fn spin(&self) {
        crate::arch::chaos::point(crate::arch::chaos::Point::WaitSpin);
        core::hint::spin_loop();
    }
}
