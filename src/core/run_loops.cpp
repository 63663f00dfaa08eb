#include "corio/run_loops.hpp"

#include <pthread.h>
#include <sched.h>

#include <mutex>

#include "corio/detail/affinity.hpp"
#include "corio/executor.hpp"
#include "corio/task.hpp"

namespace corio::detail {

struct LoopSet::Slot {
    EventLoop* loop = nullptr;  // set while the loop's main task runs
    AnyTask main;               // touched only on that loop's thread
};

struct LoopSet::Shared {
    std::mutex mutex;
    bool stopping = false;
    // Loop 0 runs on the caller's thread: its affinity is given back when run_loops returns.
    bool restore_affinity = false;
    cpu_set_t caller_affinity;
};

LoopSet::LoopSet(std::size_t count)
    : slots_(std::make_unique<Slot[]>(count)), count_(count), shared_(std::make_unique<Shared>()) {}

LoopSet::~LoopSet() {
    if (shared_->restore_affinity) {
        ::pthread_setaffinity_np(::pthread_self(), sizeof shared_->caller_affinity, &shared_->caller_affinity);
        forget_pinned();
    }
}

void LoopSet::enter(std::size_t index) {
    Slot& slot = slots_[index];
    slot.main = current_task();
    std::lock_guard lock(shared_->mutex);
    slot.loop = &get_running_loop();
    if (shared_->stopping) slot.main.cancel();  // another loop failed before this one started
}

void LoopSet::leave(std::size_t index) noexcept {
    {
        std::lock_guard lock(shared_->mutex);
        slots_[index].loop = nullptr;
    }
    slots_[index].main = AnyTask{};  // on its own thread: task references are not atomic
}

void LoopSet::stop_all() noexcept {
    std::lock_guard lock(shared_->mutex);
    if (shared_->stopping) return;
    shared_->stopping = true;
    for (std::size_t i = 0; i < count_; ++i) {
        Slot* slot = &slots_[i];
        if (!slot->loop) continue;
        try {
            // `leave` waits for this mutex, so the loop is still open while we post to it.
            slot->loop->call_soon_threadsafe([slot] {
                if (slot->main && !slot->main.done()) slot->main.cancel();
            });
        } catch (...) {
            // A loop that is already closing is stopping anyway.
        }
    }
}

void (*run_loops_watching_hook)() = nullptr;

int LoopSet::join_others(std::vector<std::thread>& threads, bool handle_sigint) {
    bool stopping;
    {
        std::lock_guard lock(shared_->mutex);
        stopping = shared_->stopping;
    }
    int interrupted_by = 0;
    if (handle_sigint && !stopping && !threads.empty()) {
        // A loop of the caller's own watches Ctrl-C while a worker joins the threads; Ctrl-C
        // cancels its main, which stops every loop, and its shutdown then waits for the join.
        auto watch = [](LoopSet* set, std::vector<std::thread>* others) -> Coro<> {
            if (run_loops_watching_hook) run_loops_watching_hook();
            auto joining = to_thread([others] {
                for (auto& t : *others) t.join();
            });
            try {
                co_await std::move(joining);
            } catch (const CancelledError&) {
                set->stop_all();
                throw;
            }
        };
        try {
            run(watch(this, &threads));
        } catch (const KeyboardInterrupt& k) {
            interrupted_by = k.signal();
        } catch (...) {
            // The watch could not run (no thread for the join, ...): stop the loops and join
            // them here, as a joinable std::thread must not be destroyed.
            stop_all();
            for (auto& t : threads)
                if (t.joinable()) t.join();
            throw;
        }
    }
    for (auto& t : threads)
        if (t.joinable()) t.join();
    return interrupted_by;
}

void LoopSet::pin(std::size_t index) noexcept {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
    if (index == 0) {
        shared_->caller_affinity = allowed;
        shared_->restore_affinity = true;
    }
    int usable = CPU_COUNT(&allowed);
    if (usable <= 0) return;
    int want = int(index % std::size_t(usable));
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &allowed)) continue;
        if (want-- == 0) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            if (::pthread_setaffinity_np(::pthread_self(), sizeof one, &one) == 0) note_pinned(allowed);
            return;
        }
    }
}

}  // namespace corio::detail
