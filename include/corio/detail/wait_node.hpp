// How a task waits. Every corio awaitable that suspends a task is a WaitNode: the task points
// at it while suspended, so that Task::cancel() can reach whatever the task waits on and make
// it give up its place (a lock queue slot, a timer, a queue getter) without stealing anything.
#pragma once

#include <coroutine>
#include <stdexcept>
#include <vector>

#include "corio/detail/intrusive_list.hpp"

namespace corio::detail {

class TaskBase;
class FutureBase;
struct WaitTag;

struct WaitNode {
    TaskBase* task = nullptr;
    bool woken = false;      // the task has been scheduled to resume from here
    bool cancelled = false;  // a cancellation is delivered when the task resumes from here
    // The first cancellation came after the wake-up: uncancel() back to zero may still take it
    // back (asyncio 3.13), since nothing was given up for it. Not so once an earlier cancel has
    // made the node give up its place: that one stays delivered.
    bool late_cancel = false;

    // Called by Task::cancel() while the task waits on this node. The default stops waiting
    // at once; a node already woken keeps its wake-up, and the cancellation is thrown from
    // await_resume (where a primitive hands back whatever it had been granted).
    virtual void on_cancel() {
        if (!woken) {
            detach();
            wake();
        } else if (!cancelled) {
            late_cancel = true;
        }
        cancelled = true;
    }
    // Leaves the primitive's waiting structure (a list, the timer heap, ...).
    virtual void detach() noexcept {}
    // The futures and tasks this node waits for, if any (for the task graph of introspection).
    virtual void collect_awaited(std::vector<const FutureBase*>&) const {}

    // The first act of await_suspend. False: a cancellation was already pending for this task;
    // the task is woken from here at once, to have it delivered on the next tick, so the awaiter
    // suspends without taking a place anywhere (it returns true).
    bool suspend(std::coroutine_handle<> h);
    // Schedules the task to resume from here (never inline).
    void wake() noexcept;
    // The same from a timer: woken now, scheduled by the ready queue (EventLoop::schedule_timer_wake).
    void wake_from_timer() noexcept;
    void throw_if_cancelled() const;

protected:
    ~WaitNode() = default;
};

// Library code that caught the running task's CancelledError only to wait for what must finish
// first (a group's children, a lock to take back, a server's handlers), then rethrows it: debug
// mode's check for a swallowed cancellation waits for the scope to end.
class CleanupAfterCancel {
public:
    CleanupAfterCancel() noexcept;
    ~CleanupAfterCancel();
    CleanupAfterCancel(const CleanupAfterCancel&) = delete;
    CleanupAfterCancel& operator=(const CleanupAfterCancel&) = delete;

private:
    TaskBase* task_;  // counted in its extras (debug mode only)
};

// A node that waits in a primitive's FIFO list (a lock, a semaphore, an event...). Awaiters kept
// elsewhere (a sleep's timer heap slot, a future's waiter list) do without the 16-byte link:
// every sleeping task carries its awaiter in its frame.
struct ListedWaitNode : WaitNode, ListHook<WaitTag> {
protected:
    ListedWaitNode() = default;
    // An awaiter may be moved before it is awaited (wait_for takes it into its own frame), never
    // after: the new node starts fresh, unlinked.
    ListedWaitNode(ListedWaitNode&&) noexcept : WaitNode(), ListHook<WaitTag>() {}
    ListedWaitNode& operator=(ListedWaitNode&&) = delete;
    ~ListedWaitNode() = default;
};

using WaitList = IntrusiveList<ListedWaitNode, WaitTag>;

}  // namespace corio::detail
