// asyncio-rules.md T8, T9 (test_tasks: test_cancel_inner_future, test_cancel_both_task_and_inner_future,
// test_cancel_task_catching) and SH4, SH5 (test_shield_exception..., test_shield_gather,
// test_gather_shield): the cancellation rules the other suites pinned only in part.
#include <corio/corio.hpp>
#include <corio/testing.hpp>

#include "core_support.hpp"

#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::all_messages;
using corio_test::CapturedReports;

namespace {

Coro<> await_future(Future<>* f) { co_await *f; }

int g_proof = 0;

Coro<> inner_records(Future<>* f) {
    try {
        co_await *f;
    } catch (const CancelledError&) {
        g_proof += 1;
        throw;
    }
}

Coro<> middle_swallows(Future<>* f) {
    try {
        Coro<> inner = inner_records(f);
        co_await std::move(inner);
    } catch (const CancelledError&) {
        g_proof += 100;
    }
}

Coro<int> value_after(Future<>* f, int v) {
    co_await *f;
    co_return v;
}

Coro<int> fails_after(Future<>* f) {
    co_await *f;
    throw std::runtime_error("inner boom");
}

Coro<int> shields(Task<int> inner) {
    auto shielded = shield(inner);
    int v = co_await std::move(shielded);
    co_return v;
}

Coro<> gathers_shields(Task<int> a, Task<int> b) {
    Coro<std::tuple<int, int>> both = gather(shield(a), shield(b));
    co_await std::move(both);
}

Coro<> shields_a_gather(Task<int> a, Task<int> b) {
    auto both = shield(gather(a, b));
    co_await std::move(both);
}

}  // namespace

// T8: a future the task awaits, cancelled by someone else, cancels the task, which never asked
// for it: cancelling() stays 0. Cancelling both counts the task's own request.
CORIO_TEST(CancelRules, AFutureCancelledFromOutsideCancelsTheTaskWithoutARequest) {
    EventLoop& loop = get_running_loop();
    Future<> f(loop);
    Task<> t = create_task(await_future(&f));
    co_await sleep(0s);
    f.cancel("from outside");
    try {
        co_await t;
    } catch (const CancelledError&) {
    }
    EXPECT_TRUE(t.cancelled());
    EXPECT_EQ(t.cancelling(), 0);

    Future<> g(loop);
    Task<> u = create_task(await_future(&g));
    co_await sleep(0s);
    g.cancel();
    u.cancel();
    try {
        co_await u;
    } catch (const CancelledError&) {
    }
    EXPECT_TRUE(u.cancelled());
    EXPECT_EQ(u.cancelling(), 1);
}

// T9: the cancellation reaches the innermost await of the chain (the future is cancelled), and a
// frame in the middle that swallows it ends the task normally.
CORIO_TEST(CancelRules, ACancellationSwallowedMidChainEndsTheTaskNormally) {
    EventLoop& loop = get_running_loop();
    g_proof = 0;
    Future<> f(loop);
    Task<> t = create_task(middle_swallows(&f));
    co_await sleep(0s);
    t.cancel();
    co_await t;
    EXPECT_FALSE(t.cancelled());
    EXPECT_EQ(g_proof, 101);
    EXPECT_TRUE(f.cancelled());
}

// SH4: a shielded task that fails after its shield's caller was cancelled is reported once,
// when its last handle goes, however many shields it had; one that succeeds is not reported.
CORIO_TEST(CancelRules, AShieldedFailureAfterTheCallersCancelIsReportedOnce) {
    EventLoop& loop = get_running_loop();
    CapturedReports captured;
    {
        Future<> f(loop);
        Task<int> inner = create_task(fails_after(&f));
        Task<int> first = create_task(shields(inner));
        Task<int> second = create_task(shields(inner));
        co_await sleep(0s);
        first.cancel();
        second.cancel();
        for (Task<int>* t : {&first, &second}) {
            try {
                co_await *t;
            } catch (const CancelledError&) {
            }
        }
        f.set_result();
        co_await sleep(0s);
        co_await sleep(0s);
        EXPECT_TRUE(inner.done());
        EXPECT_TRUE(captured.reports.empty()) << all_messages(captured.reports);  // a handle is left
    }
    EXPECT_EQ(captured.reports.size(), 1u) << all_messages(captured.reports);
    captured.reports.clear();
    {
        Future<> f(loop);
        Task<int> inner = create_task(value_after(&f, 5));
        Task<int> outer = create_task(shields(inner));
        co_await sleep(0s);
        outer.cancel();
        try {
            co_await outer;
        } catch (const CancelledError&) {
        }
        f.set_result();
        co_await sleep(0s);
        co_await sleep(0s);
        EXPECT_EQ(inner.result(), 5);
    }
    EXPECT_TRUE(captured.reports.empty()) << all_messages(captured.reports);
}

// SH5: cancelling gather(shield(a), shield(b)) or shield(gather(a, b)) leaves a and b running.
CORIO_TEST(CancelRules, ShieldsInsideOrAroundAGatherKeepTheTasksRunning) {
    EventLoop& loop = get_running_loop();
    for (bool shield_outside : {false, true}) {
        Future<> f(loop);
        Task<int> a = create_task(value_after(&f, 1));
        Task<int> b = create_task(value_after(&f, 2));
        Task<> outer = create_task(shield_outside ? shields_a_gather(a, b) : gathers_shields(a, b));
        co_await sleep(0s);
        co_await sleep(0s);
        outer.cancel();
        try {
            co_await outer;
        } catch (const CancelledError&) {
        }
        EXPECT_TRUE(outer.cancelled());
        EXPECT_FALSE(a.done());
        EXPECT_FALSE(b.done());
        f.set_result();
        int x = co_await a;
        int y = co_await b;
        EXPECT_EQ(x + 10 * y, 21) << (shield_outside ? "shield(gather)" : "gather(shield, shield)");
        co_await sleep(0s);  // the shielded gather's task takes its children's results
        co_await sleep(0s);
    }
}
