// gather: results in argument order, return_exceptions, the first failure cancelling and
// awaiting the siblings (corio differs from asyncio, API.md), child cancellation, cancelling the
// gather, empty ranges, Task arguments, void and move-only results.
// Ports CPython's Lib/test/test_asyncio/test_tasks.py GatherTestsBase / CoroutineGatherTests /
// FutureGatherTests; each test names the CPython test (or the asyncio-rules.md / API.md rule).
#include <corio/testing.hpp>

#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

using Log = std::vector<std::string>;

std::string what_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (const CancelledError& c) {
        return std::string("CancelledError: ") + c.what();
    } catch (...) {
        return "?";
    }
}

bool is_cancelled_error(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError&) {
        return true;
    } catch (...) {
        return false;
    }
}

Coro<int> value_after(Clock::duration d, int v, Log* log = nullptr) {
    co_await sleep(d);
    if (log) log->push_back(std::to_string(v));
    co_return v;
}

Coro<int> fail_after(Clock::duration d, std::string what, Log* log = nullptr) {
    co_await sleep(d);
    if (log) log->push_back("fail " + what);
    throw std::runtime_error(what);
}

Coro<> nothing() { co_return; }

Coro<std::unique_ptr<int>> make_ptr(Clock::duration d, int v) {
    co_await sleep(d);
    co_return std::make_unique<int>(v);
}

// Sleeps; when cancelled, logs, cleans up for `cleanup` (an await), logs again and rethrows.
Coro<int> slow_to_cancel(Clock::duration d, Clock::duration cleanup, Log* log, std::string name) {
    std::exception_ptr cancelled;
    try {
        co_await sleep(d);
    } catch (const CancelledError&) {
        cancelled = std::current_exception();
    }
    if (cancelled) {
        log->push_back(name + " cancelled");
        co_await sleep(cleanup);
        log->push_back(name + " cleaned up");
        std::rethrow_exception(cancelled);
    }
    co_return 1;
}

// Records the CancelledError message seen inside, then rethrows.
Coro<int> record_cancel(Clock::duration d, Log* log) {
    try {
        co_await sleep(d);
    } catch (const CancelledError& e) {
        log->push_back(std::string("cancelled: ") + e.what());
        throw;
    }
    co_return 0;
}

}  // namespace

// G1 / test_tasks.py::GatherTestsBase::test_success: results follow argument order, not
// completion order (here completion order is b, c, a).
CORIO_TEST(Gather, ResultsInArgumentOrderNotCompletionOrder) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    Log done;
    auto gathering = gather(value_after(3s, 1, &done), value_after(1s, 2, &done), value_after(2s, 3, &done));
    auto res = co_await std::move(gathering);
    auto& [a, b, c] = res;
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, 2);
    EXPECT_EQ(c, 3);
    EXPECT_EQ(done, (Log{"2", "3", "1"}));
    EXPECT_EQ(clock.seconds_since(t0), 3.0);

    done.clear();
    std::vector<Coro<int>> coros;
    for (int i = 0; i < 6; ++i) coros.push_back(value_after(std::chrono::seconds(6 - i), i, &done));
    auto gathering2 = gather(std::move(coros));
    std::vector<int> all = co_await std::move(gathering2);
    EXPECT_EQ(all, (std::vector<int>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(done, (Log{"5", "4", "3", "2", "1", "0"}));
}

namespace {
Coro<int> logs_its_start(int id, Log* started) {
    started->push_back(std::to_string(id));
    co_await sleep(0s);
    co_return id;
}
}  // namespace

// asyncio's gather wraps its arguments in tasks left to right, so the children start in argument
// order (g++ made the tasks of the variadic form right to left: "3", "2", "1").
CORIO_TEST(Gather, ChildrenStartInArgumentOrder) {
    Log started;
    auto gathering = gather(logs_its_start(1, &started), logs_its_start(2, &started), logs_its_start(3, &started));
    auto res = co_await std::move(gathering);
    EXPECT_EQ(started, (Log{"1", "2", "3"}));
    EXPECT_EQ(std::get<0>(res), 1);

    started.clear();
    auto outcomes = gather(return_exceptions, logs_its_start(4, &started), logs_its_start(5, &started));
    auto res2 = co_await std::move(outcomes);
    EXPECT_EQ(started, (Log{"4", "5"}));
    (void)res2;
}

// G5 / test_tasks.py::GatherTestsBase::test_return_exceptions: every child runs to the end and
// each failure takes its argument's place.
CORIO_TEST(Gather, ReturnExceptionsPlacesErrorsInPosition) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    auto gathering = gather(return_exceptions, value_after(3s, 3), value_after(1s, 1), fail_after(2s, "exc"),
                      fail_after(4s, "exc2"));
    auto res = co_await std::move(gathering);
    auto& [a, b, c, d] = res;
    EXPECT_EQ(clock.seconds_since(t0), 4.0);  // waited for all of them
    CO_ASSERT_TRUE(a.has_value());
    CO_ASSERT_TRUE(b.has_value());
    EXPECT_EQ(a.value(), 3);
    EXPECT_EQ(b.value(), 1);
    EXPECT_FALSE(c.has_value());
    EXPECT_FALSE(d.has_value());
    EXPECT_EQ(what_of(c.error()), "exc");
    EXPECT_EQ(what_of(d.error()), "exc2");
    EXPECT_EQ(a.error(), nullptr);
    EXPECT_THROW((void)c.value(), std::runtime_error);

    std::vector<Coro<int>> coros;
    coros.push_back(fail_after(1s, "first"));
    coros.push_back(value_after(2s, 20));
    coros.push_back(fail_after(3s, "third"));
    auto gathering2 = gather(return_exceptions, std::move(coros));
    std::vector<Outcome<int>> outs = co_await std::move(gathering2);
    CO_ASSERT_EQ(outs.size(), 3u);
    EXPECT_EQ(what_of(outs[0].error()), "first");
    CO_ASSERT_TRUE(outs[1].has_value());
    EXPECT_EQ(outs[1].value(), 20);
    EXPECT_EQ(what_of(outs[2].error()), "third");
}

// API.md (differs from G4 / test_tasks.py::GatherTestsBase::test_one_exception): the first
// failure cancels the others, waits for them to finish (their cleanup included), then is
// rethrown.
CORIO_TEST(Gather, FirstFailureCancelsSiblingsAndWaitsForThemBeforeRethrowing) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    Log log;
    Task<int> sibling = create_task(slow_to_cancel(10s, 5s, &log, "sibling"));
    bool threw = false;
    try {
        auto gathering = gather(sibling, fail_after(1s, "boom", &log), slow_to_cancel(20s, 2s, &log, "other"));
        co_await std::move(gathering);
    } catch (const std::runtime_error& e) {
        threw = true;
        EXPECT_STREQ(e.what(), "boom");
        log.push_back("gather threw");
    }
    EXPECT_TRUE(threw);
    EXPECT_EQ(log, (Log{"fail boom", "sibling cancelled", "other cancelled", "other cleaned up",
                        "sibling cleaned up", "gather threw"}));
    EXPECT_EQ(clock.seconds_since(t0), 6.0);  // 1 s to the failure, then the 5 s cleanup
    EXPECT_TRUE(sibling.cancelled());
    EXPECT_EQ(current_task().cancelling(), 0);
}

// API.md: a sibling that swallows the cancel and returns does not hide the failure.
CORIO_TEST(Gather, FailureIsRethrownEvenIfASiblingSwallowsTheCancel) {
    corio::testing::MockClock clock;
    auto swallow = []() -> Coro<int> {
        try {
            co_await sleep(10s);
        } catch (const CancelledError&) {
            co_return 99;
        }
        co_return 1;
    };
    Task<int> stubborn = create_task(swallow());
    bool threw = false;
    try {
        auto gathering = gather(stubborn, fail_after(1s, "boom"));
        co_await std::move(gathering);
    } catch (const std::runtime_error& e) {
        threw = std::string(e.what()) == "boom";
    }
    EXPECT_TRUE(threw);
    CO_ASSERT_TRUE(stubborn.done());
    EXPECT_FALSE(stubborn.cancelled());
    EXPECT_EQ(stubborn.result(), 99);
}

// G6 / test_tasks.py::FutureGatherTests::test_one_cancellation: a child cancelled by someone
// else makes gather throw CancelledError, while the task awaiting gather is not cancelled.
// Under corio's rule the other child is cancelled too (the first failure cancels the others).
CORIO_TEST(Gather, CancelledChildMakesGatherThrowCancelledError) {
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    Task<int> a = create_task(value_after(10s, 1));
    Task<int> b = create_task(value_after(20s, 2));
    loop.call_later(1s, [a]() mutable { a.cancel(); });
    bool cancelled = false;
    try {
        auto gathering = gather(a, b);
        co_await std::move(gathering);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    EXPECT_TRUE(a.cancelled());
    EXPECT_TRUE(b.cancelled());
    EXPECT_EQ(current_task().cancelling(), 0);
    co_await sleep(1s);  // this task itself was not cancelled: it goes on
}

// G6 / test_tasks.py::FutureGatherTests::test_result_exception_one_cancellation: with
// return_exceptions a cancelled child gives a CancelledError in its place, the others finish.
CORIO_TEST(Gather, CancelledChildWithReturnExceptionsIsAnError) {
    corio::testing::MockClock clock;
    EventLoop& loop = get_running_loop();
    Task<int> a = create_task(value_after(10s, 1));
    Task<int> b = create_task(value_after(20s, 2));
    loop.call_later(1s, [a]() mutable { a.cancel(); });
    auto gathering = gather(return_exceptions, a, b);
    auto res = co_await std::move(gathering);
    auto& [ra, rb] = res;
    EXPECT_FALSE(ra.has_value());
    EXPECT_TRUE(is_cancelled_error(ra.error()));
    CO_ASSERT_TRUE(rb.has_value());
    EXPECT_EQ(rb.value(), 2);
    EXPECT_FALSE(b.cancelled());
}

// T11, G7 / test_tasks.py::CoroutineGatherTests::test_cancellation_broadcast: cancelling the task
// that awaits gather cancels every child with the message, and the task ends cancelled with it.
CORIO_TEST(Gather, CancellingTheAwaitingTaskCancelsAllChildrenWithTheMessage) {
    corio::testing::MockClock clock;
    Log log;
    Task<int> a = create_task(record_cancel(10s, &log));
    Task<int> b = create_task(record_cancel(20s, &log));
    auto waiter = [](Task<int> x, Task<int> y) -> Coro<> {
        auto both = gather(x, y);
        co_await std::move(both);
    };
    Task<> g = create_task(waiter(a, b));
    co_await sleep(1s);
    EXPECT_TRUE(g.cancel("stop now"));
    std::optional<std::string> msg;
    try {
        co_await g;
    } catch (const CancelledError& e) {
        msg = e.what();
    }
    EXPECT_EQ(msg, std::optional<std::string>("stop now"));
    EXPECT_TRUE(g.cancelled());
    EXPECT_TRUE(a.cancelled());
    EXPECT_TRUE(b.cancelled());
    EXPECT_EQ(log, (Log{"cancelled: stop now", "cancelled: stop now"}));
}

namespace {
Coro<> gather_loop_until_cancelled() {
    int time_ms = 0;
    for (;;) {
        time_ms += 50;
        auto gathering = gather(return_exceptions, value_after(50ms, 0));
        auto r = co_await std::move(gathering);
        (void)r;
        if (time_ms > 1000) co_return;
    }
}
}  // namespace

// G7, T11 / test_tasks.py::BaseTaskTests::test_cancel_gather_2 (bpo-32684): even with
// return_exceptions a requested cancellation propagates, with its message.
CORIO_TEST(Gather, CancelWithReturnExceptionsStillPropagatesWithMessage) {
    corio::testing::MockClock clock;
    Task<> qwe = create_task(gather_loop_until_cancelled());
    co_await sleep(200ms);
    qwe.cancel("my message");
    std::optional<std::string> msg;
    try {
        co_await qwe;
    } catch (const CancelledError& e) {
        msg = e.what();
    }
    EXPECT_EQ(msg, std::optional<std::string>("my message"));
    EXPECT_TRUE(qwe.cancelled());
}

namespace {
// Its cleanup, once cancelled, fails.
Coro<int> cleanup_fails() {
    try {
        co_await sleep(1h);
    } catch (const CancelledError&) {
    }
    throw std::runtime_error("cleanup failed");
}
Coro<int> sleeps_an_hour() {
    co_await sleep(1h);
    co_return 0;
}
Coro<> gathers_a_failing_cleanup(bool with_return_exceptions) {
    if (with_return_exceptions) {
        auto both = gather(return_exceptions, cleanup_fails(), sleeps_an_hour());
        (void)co_await std::move(both);
    } else {
        auto both = gather(cleanup_fails(), sleeps_an_hour());
        (void)co_await std::move(both);
    }
}
}  // namespace

// G7 (asyncio's _done_callback): when the gather is cancelled, the first child to end badly
// decides. A child whose cleanup raises makes that error the gather's, not CancelledError, and
// under a timeout it is not turned into TimeoutError. With return_exceptions, CancelledError.
CORIO_TEST(Gather, AFailureWhileCancellingIsNotTurnedIntoACancellation) {
    corio::testing::MockClock clock;
    Task<> plain = create_task(gathers_a_failing_cleanup(false));
    co_await sleep(10ms);
    plain.cancel();
    std::exception_ptr e;
    try {
        co_await plain;
    } catch (...) {
        e = std::current_exception();
    }
    EXPECT_EQ(what_of(e), "cleanup failed");

    std::exception_ptr e2;
    try {
        co_await timeout(10ms, [](Timeout&) -> Coro<> {
            Coro<> gathering = gathers_a_failing_cleanup(false);
            co_await std::move(gathering);
        });
    } catch (...) {
        e2 = std::current_exception();
    }
    EXPECT_EQ(what_of(e2), "cleanup failed");
    EXPECT_EQ(current_task().uncancel(), 0);  // the timeout took its own request back

    Task<> outcomes = create_task(gathers_a_failing_cleanup(true));
    co_await sleep(10ms);
    outcomes.cancel();
    std::exception_ptr e3;
    try {
        co_await outcomes;
    } catch (...) {
        e3 = std::current_exception();
    }
    EXPECT_TRUE(is_cancelled_error(e3)) << what_of(e3);
}

// G3 / test_tasks.py::FutureGatherTests::test_constructor_empty_sequence_use_running_loop.
CORIO_TEST(Gather, EmptyRangeReturnsEmptyVector) {
    std::vector<Coro<int>> none;
    auto gathering = gather(std::move(none));
    std::vector<int> r = co_await std::move(gathering);
    EXPECT_TRUE(r.empty());
    std::vector<Task<int>> no_tasks;
    auto gathering2 = gather(return_exceptions, std::move(no_tasks));
    std::vector<Outcome<int>> o = co_await std::move(gathering2);
    EXPECT_TRUE(o.empty());
}

// API.md "gather ... take Tasks as well as Coros"; G2 / test_tasks.py::CoroutineGatherTests::
// test_duplicate_coroutines: the same task twice gives its result twice.
CORIO_TEST(Gather, GatherOfTaskHandlesSameTaskTwice) {
    corio::testing::MockClock clock;
    Task<int> c = create_task(value_after(1s, 7));
    Task<int> d = create_task(value_after(2s, 8));
    auto gathering = gather(c, c, d, c);
    auto res = co_await std::move(gathering);
    EXPECT_EQ(res, std::make_tuple(7, 7, 8, 7));
    std::vector<Task<int>> handles{d, c, d};
    auto gathering2 = gather(std::move(handles));
    std::vector<int> v = co_await std::move(gathering2);
    EXPECT_EQ(v, (std::vector<int>{8, 7, 8}));
    Task<int> mixed = create_task(value_after(1s, 1));
    auto gathering3 = gather(mixed, value_after(1s, 2));
    auto res2 = co_await std::move(gathering3);
    EXPECT_EQ(res2, std::make_tuple(1, 2));
}

// void children give std::monostate (asyncio's None).
CORIO_TEST(Gather, VoidCoroutinesGiveMonostate) {
    auto gathering = gather(nothing(), value_after(0s, 3), nothing());
    auto res = co_await std::move(gathering);
    static_assert(std::is_same_v<decltype(res), std::tuple<std::monostate, int, std::monostate>>);
    EXPECT_EQ(std::get<1>(res), 3);
    std::vector<Coro<>> voids;
    voids.push_back(nothing());
    voids.push_back(nothing());
    auto gathering2 = gather(std::move(voids));
    std::vector<std::monostate> v = co_await std::move(gathering2);
    EXPECT_EQ(v.size(), 2u);
    auto gathering3 = gather(return_exceptions, nothing());
    auto outs = co_await std::move(gathering3);
    EXPECT_TRUE(std::get<0>(outs).has_value());
}

// Move-only results (std::unique_ptr) come back intact, in a tuple, a vector and as Outcomes.
CORIO_TEST(Gather, MoveOnlyResultsWork) {
    corio::testing::MockClock clock;
    auto gathering = gather(make_ptr(2s, 1), make_ptr(1s, 2));
    auto res = co_await std::move(gathering);
    auto& [p1, p2] = res;
    CO_ASSERT_TRUE(p1 && p2);
    EXPECT_EQ(*p1, 1);
    EXPECT_EQ(*p2, 2);

    std::vector<Coro<std::unique_ptr<int>>> coros;
    for (int i = 0; i < 3; ++i) coros.push_back(make_ptr(std::chrono::seconds(3 - i), i));
    auto gathering2 = gather(std::move(coros));
    std::vector<std::unique_ptr<int>> ptrs = co_await std::move(gathering2);
    CO_ASSERT_EQ(ptrs.size(), 3u);
    for (int i = 0; i < 3; ++i) {
        CO_ASSERT_TRUE(ptrs[i] != nullptr);
        EXPECT_EQ(*ptrs[i], i);
    }

    auto gathering3 = gather(return_exceptions, make_ptr(1s, 5), make_ptr(2s, 6));
    auto outs = co_await std::move(gathering3);
    std::unique_ptr<int> q = std::move(std::get<0>(outs)).value();
    CO_ASSERT_TRUE(q != nullptr);
    EXPECT_EQ(*q, 5);
    EXPECT_EQ(*std::get<1>(outs).value(), 6);
}

// asyncio's gather takes any awaitable: gather(event.wait(), queue.get()) runs both as tasks.
// So does corio's, for any awaitable that can be moved (a primitive's awaiter, a Future, a sleep).
CORIO_TEST(Gather, TakesThePrimitivesAwaitersAndFutures) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    Event ev;
    Queue<int> q;
    Future<std::string> fut = get_running_loop().create_future<std::string>();
    get_running_loop().call_later(1s, [&ev] { ev.set(); });
    get_running_loop().call_later(2s, [&q] { q.put_nowait(7); });
    get_running_loop().call_later(3s, [fut]() mutable { fut.set_result("done"); });
    Coro<std::tuple<bool, int, std::string, std::monostate>> all = gather(ev.wait(), q.get(), fut, sleep(1s));
    auto [woke, item, text, slept] = co_await std::move(all);
    EXPECT_TRUE(woke);
    EXPECT_EQ(item, 7);
    EXPECT_EQ(text, "done");
    (void)slept;
    EXPECT_EQ(clock.seconds_since(t0), 3.0);

    // A vector of awaiters, through wait(): the getter that timed out is cancelled and takes
    // no item.
    std::vector<Queue<int>::GetAwaiter> getters;
    getters.push_back(q.get());
    getters.push_back(q.get());
    q.put_nowait(1);
    Coro<WaitResult<int>> waiting = corio::wait(std::move(getters), 1s);
    WaitResult<int> r = co_await std::move(waiting);
    CO_ASSERT_EQ(r.done.size(), 1u);
    EXPECT_EQ(r.done[0].result(), 1);
    CO_ASSERT_EQ(r.pending.size(), 1u);
    r.pending[0].cancel();
    Coro<WaitResult<int>> cancelling = corio::wait(r.pending);
    co_await std::move(cancelling);
    EXPECT_TRUE(r.pending[0].cancelled());
    EXPECT_TRUE(q.empty());
}
