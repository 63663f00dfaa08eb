// How and when a cancellation is delivered. A request made while the task runs is delivered at
// its next await, on the next tick (T6: asyncio cancels the future the task yields, whose
// callback wakes it), so what is already ready runs first. A second cancel() while the first is
// still being handled: the task sees the message of the first to reach what it awaits (T11),
// and every request is passed on to the tasks it waits for (G7: _GatheringFuture.cancel calls
// each unfinished child's cancel(msg) every time), so a child that handled the first one still
// hears the next.
#include <corio/taskgroup.hpp>
#include <corio/testing.hpp>
#include <corio/timeouts.hpp>

#include <optional>
#include <string>
#include <tuple>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

using Log = std::vector<std::string>;

// Handles the first cancel and works on for 10 s, unless cancelled again.
Coro<int> handles_first_cancel(Log* log) {
    try {
        co_await sleep(1h);
    } catch (const CancelledError& e) {
        log->push_back(std::string("first:") + e.what());
    }
    try {
        co_await sleep(10s);
    } catch (const CancelledError& e) {
        log->push_back(std::string("second:") + e.what());
        throw;
    }
    co_return 7;
}

Coro<int> fails_soon() {
    co_await sleep(1s);
    throw std::runtime_error("boom");
}

template <class T>
Coro<std::string> cancel_message_of(Task<T> t) {
    std::string m = "<no CancelledError>";
    try {
        co_await t;
    } catch (const CancelledError& e) {
        m = e.what();
    }
    co_return m;
}

Coro<int> waits_a_second_for(Future<int> f) {
    Coro<int> w = wait_for(f, 1s);
    int v = co_await std::move(w);
    co_return v;
}

Coro<int> await_future(Future<int> f) {
    int v = co_await f;
    co_return v;
}

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(get_running_loop().time() - t0).count();
}

}  // namespace

CORIO_TEST(CancelDelivery, EveryCancelOfATaskAwaitingGatherReachesTheChildren) {
    for (bool settled : {false, true}) {
        corio::testing::MockClock clock;
        const Clock::time_point t0 = get_running_loop().time();
        Log log;
        auto gathering = [&log, settled]() -> Coro<> {
            if (settled) {
                Coro<std::tuple<Outcome<int>>> g = gather(return_exceptions, handles_first_cancel(&log));
                co_await std::move(g);
            } else {
                Coro<std::tuple<int>> g = gather(handles_first_cancel(&log));
                co_await std::move(g);
            }
        };
        Task<> t = create_task(gathering());
        co_await sleep(1s);
        t.cancel("one");
        co_await sleep(1s);
        t.cancel("two");  // the child goes on after "one": this one must reach it
        Coro<std::string> ending = cancel_message_of(t);
        std::string message = co_await std::move(ending);
        EXPECT_EQ(ms_since(t0), 2000.0);
        EXPECT_EQ(log, (Log{"first:one", "second:two"}));
        EXPECT_EQ(message, "two");  // the child ended with it (G7: the child's CancelledError)
    }
}

// corio's gather cancels and awaits the other children after the first failure (API.md): a
// cancel of the awaiting task meanwhile is passed on to those still running.
CORIO_TEST(CancelDelivery, ACancelWhileGatherAwaitsTheRestAfterAFailureReachesThem) {
    corio::testing::MockClock clock;
    const Clock::time_point t0 = get_running_loop().time();
    Log log;
    auto gathering = [&log]() -> Coro<> {
        Coro<std::tuple<int, int>> g = gather(fails_soon(), handles_first_cancel(&log));
        co_await std::move(g);
    };
    Task<> t = create_task(gathering());
    co_await sleep(2s);  // boom at 1 s; the other child handled gather's cancel and goes on
    EXPECT_FALSE(t.done());
    t.cancel("stop");
    Coro<std::string> ending = cancel_message_of(t);
    std::string message = co_await std::move(ending);
    EXPECT_EQ(ms_since(t0), 2000.0);
    EXPECT_EQ(log, (Log{"first:", "second:stop"}));
    EXPECT_EQ(message, "stop");
}

// wait_for(task, 0) cancels the task and waits for it: a cancel of the caller meanwhile is
// passed on too.
CORIO_TEST(CancelDelivery, ACancelWhileWaitForWindsATaskDownReachesIt) {
    corio::testing::MockClock clock;
    const Clock::time_point t0 = get_running_loop().time();
    Log log;
    Task<int> child = create_task(handles_first_cancel(&log));
    co_await sleep(1s);
    auto waiting = [&child]() -> Coro<int> {
        Coro<int> w = wait_for(child, 0s);
        int v = co_await std::move(w);
        co_return v;
    };
    Task<int> t = create_task(waiting());
    co_await sleep(1s);
    t.cancel("stop");
    Coro<std::string> ending = cancel_message_of(t);
    std::string message = co_await std::move(ending);
    EXPECT_EQ(ms_since(t0), 2000.0);
    EXPECT_EQ(log, (Log{"first:", "second:stop"}));
    EXPECT_EQ(message, "stop");
}

// T11: the first cancel cancelled the Future the task awaits, with its message; a later cancel()
// finds it done and changes nothing the task sees.
CORIO_TEST(CancelDelivery, ALaterCancelKeepsTheMessageTheAwaitedFutureWasCancelledWith) {
    for (const char* later : {"", "second"}) {
        Future<int> f = get_running_loop().create_future<int>();
        Task<int> t = create_task(await_future(f));
        co_await sleep(0s);
        EXPECT_TRUE(t.cancel("first"));
        EXPECT_TRUE(t.cancel(later));
        Coro<std::string> ending = cancel_message_of(t);
        std::string message = co_await std::move(ending);
        EXPECT_EQ(message, "first") << "later cancel(\"" << later << "\")";
        EXPECT_TRUE(f.cancelled());
    }
}

// The same through wait_for: the user's cancel and the deadline in one tick, the user's first
// (a callback whose timer was set before the deadline's; python3: the message is "user").
CORIO_TEST(CancelDelivery, AUserCancelInTheTickOfAWaitForDeadlineKeepsItsMessage) {
    corio::testing::MockClock clock;
    Future<int> f = get_running_loop().create_future<int>();
    Task<int> t;
    TimerHandle user = get_running_loop().call_later(1s, [&t] { t.cancel("user"); });
    t = create_task(waits_a_second_for(f));
    Coro<std::string> ending = cancel_message_of(t);
    std::string message = co_await std::move(ending);
    EXPECT_EQ(message, "user");
}

// A task woken by its own sleep at the deadline acts a tick later (asyncio's timer handle sets
// the sleep's future, the task runs next): the expiry has cancelled the awaited future by then,
// and its message-less CancelledError is what the waiting task sees (python3: '').
CORIO_TEST(CancelDelivery, AUserCancelFromASleepEndingAtTheDeadlineComesAfterTheExpiry) {
    corio::testing::MockClock clock;
    Future<int> f = get_running_loop().create_future<int>();
    Task<int> t = create_task(waits_a_second_for(f));
    co_await sleep(1s);  // our timer was set first, yet we run a tick after the expiry
    t.cancel("user");
    Coro<std::string> ending = cancel_message_of(t);
    std::string message = co_await std::move(ending);
    EXPECT_EQ(message, "");
}

// The task awaited is told each request's own message, as asyncio's cancel(msg) passes msg to
// the task it waits for, while the awaiting task keeps the first.
CORIO_TEST(CancelDelivery, AnAwaitedTaskHearsEachRequestsOwnMessage) {
    corio::testing::MockClock clock;
    Log log;
    Task<int> child = create_task(handles_first_cancel(&log));
    auto awaiting = [&child]() -> Coro<int> {
        int v = co_await child;
        co_return v;
    };
    Task<int> t = create_task(awaiting());
    co_await sleep(1s);
    t.cancel("one");
    co_await sleep(1s);
    t.cancel("two");
    Coro<std::string> ending = cancel_message_of(t);
    std::string message = co_await std::move(ending);
    EXPECT_EQ(log, (Log{"first:one", "second:two"}));
    EXPECT_EQ(message, "two");  // the child's CancelledError came through
}

CORIO_TEST(CancelDelivery, ASelfCancelIsDeliveredAfterWhatWasAlreadyReady) {
    corio::testing::MockClock clock;
    Log log;
    auto cancels_itself = [&log]() -> Coro<> {
        current_task().cancel();
        try {
            co_await sleep(1s);
        } catch (const CancelledError&) {
            log.push_back("A:cancelled");
            throw;
        }
    };
    auto other = [&log]() -> Coro<> {
        log.push_back("B:ran");
        co_return;
    };
    Task<> a = create_task(cancels_itself());
    Task<> b = create_task(other());  // ready before A's step ends
    Coro<std::string> ending = cancel_message_of(a);
    co_await std::move(ending);
    co_await b;
    EXPECT_EQ(log, (Log{"B:ran", "A:cancelled"}));
}

// The expiry of a timeout(0) is due before the group's own cancel is delivered: the scope
// expires and turns the CancelledError into TimeoutError (asyncio 3.11+).
CORIO_TEST(CancelDelivery, ATimeoutDueNowExpiresBeforeAPendingCancelIsDelivered) {
    corio::testing::MockClock clock;
    bool expired = false;
    auto scope = [&expired](Timeout& t) -> Coro<> {
        auto body = [](TaskGroup& tg) -> Coro<> {
            tg.cancel();
            co_await sleep(1s);
        };
        Coro<> group = task_group(body);
        try {
            co_await std::move(group);
        } catch (...) {
            expired = t.expired();
            throw;
        }
    };
    bool timed_out = false;
    try {
        Coro<> limited = timeout(0s, scope);
        co_await std::move(limited);
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_TRUE(expired);
    EXPECT_EQ(current_task().cancelling(), 0);
}

namespace {
Coro<int> handles_the_cancel_and_returns() {
    try {
        co_await sleep(1h);
    } catch (const CancelledError&) {
    }
    co_return 5;
}
}  // namespace

// A request passed on to an awaited task that handled it and returned did not reach the
// awaiting task: a later cancel(), before the task resumes, sets the message it sees (asyncio
// finds the awaited task done and keeps the later message).
CORIO_TEST(CancelDelivery, ALaterCancelAfterTheAwaitedTaskHandledTheFirstSetsTheMessage) {
    corio::testing::MockClock clock;
    Task<int> child = create_task(handles_the_cancel_and_returns());
    auto awaiting = [&child]() -> Coro<int> {
        int v = co_await child;
        co_return v;
    };
    Task<int> t = create_task(awaiting());
    co_await sleep(1s);
    t.cancel("a");  // passed on to the child, which returns 5
    while (!child.done()) co_await sleep(0s);
    t.cancel("b");
    Coro<std::string> ending = cancel_message_of(t);
    std::string message = co_await std::move(ending);
    EXPECT_EQ(message, "b");
    EXPECT_EQ(t.cancelling(), 2);
}

namespace {
std::optional<Task<>> g_gathering;

// Awaits the task that gathers it: an await cycle, which a cancel goes round.
Coro<int> awaits_its_gatherer(int* cancelled) {
    co_await sleep(1s);
    try {
        Task<> gathering = *g_gathering;
        co_await gathering;
    } catch (const CancelledError&) {
        ++*cancelled;
        throw;
    }
    co_return 0;
}

Coro<> gathers(int* cancelled) {
    Coro<std::tuple<int>> g = gather(awaits_its_gatherer(cancelled));
    co_await std::move(g);
}
}  // namespace

// The request gather passes on comes back to it round the cycle: refused there, as cancel()
// refuses such an echo, so the child stops waiting and the cycle unwinds (it bounced between
// the two for ever, the child never woken).
CORIO_TEST(CancelDelivery, AGatherInAnAwaitCycleEndsWhenCancelled) {
    corio::testing::MockClock clock;
    int cancelled = 0;
    g_gathering = create_task(gathers(&cancelled));
    co_await sleep(2s);
    g_gathering->cancel("stop");
    Coro<std::string> ending = cancel_message_of(*g_gathering);
    std::string message = co_await std::move(ending);
    EXPECT_EQ(message, "stop");
    EXPECT_EQ(cancelled, 1);
    EXPECT_EQ(g_gathering->cancelling(), 1);
    g_gathering.reset();
}
