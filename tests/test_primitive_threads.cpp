// Debug mode and primitives used from another thread than their loop's (asyncio's debug mode
// refuses such a call with "Non-thread-safe operation invoked on an event loop other than the
// current one"). A primitive's wake cannot throw, so corio's debug mode delivers the wake
// through the loop's inbox, where it cannot be lost, and reports the misuse on the loop's
// thread. Found by the queue hunt: a put_nowait from another loop's thread was accepted without
// a word, even in debug mode, and the getter never woke.
#include <corio/event.hpp>
#include <corio/queue.hpp>
#include <corio/testing.hpp>

#include "core_support.hpp"
#include "queue_support.hpp"

#include <string>
#include <thread>

using namespace corio;
using namespace corio_test;
using namespace std::chrono_literals;

namespace {
std::size_t woken_from_another_thread(const std::vector<ExceptionContext>& reports) {
    std::size_t n = 0;
    for (const auto& r : reports)
        if (r.message.find("was woken from another thread") != std::string::npos) ++n;
    return n;
}

Coro<> wait_for_event(Event* e) { co_await e->wait(); }
}  // namespace

CORIO_TEST(PrimitiveThreads, InDebugModeAPutFromAnotherThreadWakesTheGetterAndIsReported) {
    CapturedReports captured;
    get_running_loop().set_debug(true);
    get_running_loop().slow_callback_duration = std::chrono::hours(1);  // no slow-step report on a loaded machine
    Queue<int> q;
    Task<int> getter = create_task(get_one(q), "getter");
    co_await sleep(0s);
    std::thread other([&q] { q.put_nowait(42); });
    other.join();
    Coro<int> getting = wait_for(getter, 10s);
    int got = co_await std::move(getting);
    EXPECT_EQ(got, 42);
    EXPECT_EQ(woken_from_another_thread(captured.reports), 1u) << all_messages(captured.reports);
}

CORIO_TEST(PrimitiveThreads, InDebugModeAnEventSetFromAnotherThreadWakesItsWaiterAndIsReported) {
    CapturedReports captured;
    get_running_loop().set_debug(true);
    get_running_loop().slow_callback_duration = std::chrono::hours(1);  // no slow-step report on a loaded machine
    Event e;
    Task<> waiter = create_task(wait_for_event(&e), "waiter");
    co_await sleep(0s);
    std::thread other([&e] { e.set(); });
    other.join();
    Coro<> waiting = wait_for(waiter, 10s);
    co_await std::move(waiting);
    EXPECT_EQ(woken_from_another_thread(captured.reports), 1u) << all_messages(captured.reports);
    EXPECT_NE(captured.reports.empty() ? std::string() : captured.reports[0].task_name, "") << "the report names the task";
}
