// Future<T>: results and exceptions, cancel() and its message, the InvalidStateError of a done
// future, done-callbacks, never-retrieved reports, the future a waiting task keeps alive, a
// future of another loop, and move-only results (asyncio-rules.md F1 - F5).
// Ports CPython's Lib/test/test_asyncio/test_futures.py; each test names the CPython test (or the
// asyncio-rules.md / API.md rule) it pins.
#include <corio/testing.hpp>

#include "task_support.hpp"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using namespace corio_test;

// ---------------------------------------------------------------------------------------------
// Future<T> (F1 - F4)
// ---------------------------------------------------------------------------------------------

// F1 / test_futures.py::BaseFutureTests::test_result, test_initial_state.
CORIO_TEST(Future, SetResultCompletesAndAwaitReturnsIt) {
    EventLoop& loop = get_running_loop();
    Future<int> f(loop);
    EXPECT_FALSE(f.done());
    EXPECT_FALSE(f.cancelled());
    EXPECT_THROW((void)f.result(), InvalidStateError);
    EXPECT_THROW((void)f.exception(), InvalidStateError);
    f.set_result(5);
    EXPECT_TRUE(f.done());
    EXPECT_FALSE(f.cancelled());
    EXPECT_EQ(f.result(), 5);
    EXPECT_EQ(f.exception(), nullptr);
    int v = co_await f;
    EXPECT_EQ(v, 5);
}

// The bridge from callbacks: a task awaiting a pending future resumes once a callback sets it.
CORIO_TEST(Future, AwaitingTaskResumesWhenACallbackSetsIt) {
    EventLoop& loop = get_running_loop();
    Future<std::string> f(loop);
    loop.call_soon([&] { f.set_result("from callback"); });
    std::string v = co_await f;
    EXPECT_EQ(v, "from callback");
}

// F1 / test_futures.py::BaseFutureTests::test_exception.
CORIO_TEST(Future, SetExceptionIsRethrownByAwaitAndResult) {
    EventLoop& loop = get_running_loop();
    Future<int> f(loop);
    f.set_exception(std::runtime_error("broken"));
    EXPECT_TRUE(f.done());
    EXPECT_FALSE(f.cancelled());
    EXPECT_EQ(what_of(f.exception()), "broken");
    EXPECT_THROW((void)f.result(), std::runtime_error);
    bool caught = false;
    try {
        co_await f;
    } catch (const std::runtime_error& e) {
        caught = true;
        EXPECT_STREQ(e.what(), "broken");
    }
    EXPECT_TRUE(caught);
}

// test_futures.py::test_exception_class / asyncio refuses set_exception(None): a null
// exception_ptr or a CancelledError is refused, and the future stays pending.
CORIO_TEST(Future, SetExceptionRefusesANullExceptionOrACancellation) {
    EventLoop& loop = get_running_loop();
    Future<int> f(loop);
    EXPECT_THROW(f.set_exception(std::exception_ptr{}), std::invalid_argument);
    EXPECT_THROW(f.set_exception(std::make_exception_ptr(CancelledError("no"))), std::invalid_argument);
    EXPECT_FALSE(f.done());
    f.set_result(3);
    int v = co_await f;
    EXPECT_EQ(v, 3);
}

// F1, F3 / test_futures.py::test_cancel, test_future_cancel_message_getter.
CORIO_TEST(Future, CancelGivesCancelledErrorWithMessage) {
    EventLoop& loop = get_running_loop();
    Future<int> f(loop);
    EXPECT_TRUE(f.cancel("nope"));
    EXPECT_TRUE(f.cancelled());
    EXPECT_TRUE(f.done());
    EXPECT_FALSE(f.cancel());
    EXPECT_THROW((void)f.result(), CancelledError);
    EXPECT_THROW((void)f.exception(), CancelledError);
    auto outcome = cancelled_with(f);
    auto msg = co_await std::move(outcome);
    EXPECT_EQ(msg, std::optional<std::string>("nope"));
    // The awaiting task was not cancelled itself.
    EXPECT_EQ(current_task().cancelling(), 0);
}

// F1: setting a done future throws InvalidStateError; nothing ever leaves a terminal state.
CORIO_TEST(Future, SettingADoneFutureThrowsInvalidStateError) {
    EventLoop& loop = get_running_loop();
    Future<int> a(loop);
    a.set_result(1);
    EXPECT_THROW(a.set_result(2), InvalidStateError);
    EXPECT_THROW(a.set_exception(std::runtime_error("x")), InvalidStateError);
    EXPECT_FALSE(a.cancel());
    EXPECT_EQ(a.result(), 1);

    Future<int> b(loop);
    b.set_exception(std::runtime_error("first"));
    EXPECT_THROW(b.set_result(2), InvalidStateError);
    EXPECT_THROW(b.set_exception(std::runtime_error("second")), InvalidStateError);
    EXPECT_EQ(what_of(b.exception()), "first");

    Future<> c(loop);
    EXPECT_TRUE(c.cancel());
    EXPECT_THROW(c.set_result(), InvalidStateError);
    EXPECT_THROW(c.set_exception(std::runtime_error("x")), InvalidStateError);
    EXPECT_TRUE(c.cancelled());
    co_return;
}

// F2 / test_futures.py::BaseFutureDoneCallbackTests::test_callbacks_invoked_on_set_result,
// test_callbacks_invoked_on_set_exception: scheduled in registration order, never inline.
CORIO_TEST(Future, DoneCallbacksAreScheduledInOrderNeverInline) {
    EventLoop& loop = get_running_loop();
    std::vector<std::string> log;
    Future<int> f(loop);
    f.add_done_callback([&] { log.push_back("a"); });
    f.add_done_callback([&] { log.push_back("b"); });
    f.set_result(1);
    EXPECT_TRUE(log.empty());
    f.add_done_callback([&] { log.push_back("c"); });  // already done: scheduled too
    EXPECT_TRUE(log.empty());
    co_await sleep(0s);
    EXPECT_EQ(log, (std::vector<std::string>{"a", "b", "c"}));

    log.clear();
    Future<int> g(loop);
    g.add_done_callback([&] { log.push_back("on-error"); });
    g.set_exception(std::runtime_error("e"));
    EXPECT_TRUE(log.empty());
    co_await sleep(0s);
    EXPECT_EQ(log, (std::vector<std::string>{"on-error"}));
    (void)g.exception();
}

// asyncio's fn(fut): the callback is given the future, so it need not capture it. One that
// never completes is then freed with its last handle, callback and captures with it (a
// callback capturing its own future would keep both alive for ever).
CORIO_TEST(Future, DoneCallbackMayTakeTheFutureAndKeepsNothingAlive) {
    EventLoop& loop = get_running_loop();
    std::vector<std::string> log;
    Future<int> f(loop);
    f.add_done_callback([&](const Future<int>& done) { log.push_back("got " + std::to_string(done.result())); });
    f.set_result(7);
    f.add_done_callback([&](Future<int> done) { log.push_back("late " + std::to_string(done.result())); });
    f.add_done_callback([&](Future<int>& done) { log.push_back("by reference " + std::to_string(done.result())); });
    co_await sleep(0s);
    EXPECT_EQ(log, (std::vector<std::string>{"got 7", "late 7", "by reference 7"}));

    auto captured = std::make_shared<int>(0);
    std::optional<Future<int>> never(std::in_place, loop);
    never->add_done_callback([captured](const Future<int>&) {});
    EXPECT_EQ(captured.use_count(), 2);
    never.reset();
    EXPECT_EQ(captured.use_count(), 1);
}

// F4 / test_futures.py::test_tb_logger_exception_unretrieved, test_tb_logger_abandoned.
CORIO_TEST(Future, NeverRetrievedFutureExceptionIsReported) {
    CapturedReports cap;
    EventLoop& loop = get_running_loop();
    {
        Future<int> f(loop);
        f.set_exception(std::runtime_error("unseen"));
        Future<int> abandoned(loop);  // never completed: no report
    }
    CO_ASSERT_EQ(cap.reports.size(), 1u);
    EXPECT_EQ(cap.reports[0].message, "Future exception was never retrieved");
    EXPECT_EQ(what_of(cap.reports[0].exception), "unseen");
    co_return;
}

// F4 / test_futures.py::test_tb_logger_not_called_after_cancel.
CORIO_TEST(Future, CancelOnADoneFutureSilencesTheNeverRetrievedReport) {
    CapturedReports cap;
    EventLoop& loop = get_running_loop();
    {
        Future<int> f(loop);
        f.set_exception(std::runtime_error("seen by cancel"));
        EXPECT_FALSE(f.cancel());
    }
    EXPECT_TRUE(cap.reports.empty());
    co_return;
}

namespace {
struct Connection {
    Future<int> reply;
};
Coro<int> await_reply(Connection* c) {
    int v = co_await c->reply;
    co_return v;
}
}  // namespace

// F1/T4: the waiting task keeps the future it awaits alive (asyncio's `_fut_waiter`): replacing
// the only handle to it and then cancelling the task cancels that future (it was freed, and the
// cancel touched freed memory).
CORIO_TEST(Future, ATaskCancelledAfterItsAwaitedFutureLostItsLastHandleIsCancelled) {
    EventLoop& loop = get_running_loop();
    Connection c{Future<int>(loop)};
    Task<int> reader = create_task(await_reply(&c));
    co_await sleep(0s);
    c.reply = Future<int>(loop);  // a "reconnect": the old future's last handle goes
    co_await sleep(0s);
    EXPECT_FALSE(reader.done());
    reader.cancel();
    auto outcome = cancelled_with(reader);
    auto r = co_await std::move(outcome);
    EXPECT_TRUE(r.has_value());
}

// F5 / test_futures.py::test_constructor_use_running_loop...: awaiting a future of another loop
// is refused (asyncio: RuntimeError "Task got Future attached to a different loop").
CORIO_TEST(Future, AwaitingAFutureOfAnotherLoopIsALogicError) {
    EventLoop other;
    {
        Future<int> foreign(other);
        bool refused = false;
        try {
            co_await foreign;
        } catch (const std::logic_error&) {
            refused = true;
        }
        EXPECT_TRUE(refused);
        foreign.cancel();
    }
    other.close();
}

// The rvalue await of a move-only result also moves it out after waiting for it.
CORIO_TEST(Future, MoveOnlyResultIsMovedOutAfterWaiting) {
    EventLoop& loop = get_running_loop();
    Future<std::unique_ptr<int>> f(loop);
    loop.call_soon([&f] { f.set_result(std::make_unique<int>(7)); });
    std::unique_ptr<int> p = co_await std::move(f);
    CO_ASSERT_TRUE(p != nullptr);
    EXPECT_EQ(*p, 7);
}

// Future of a move-only type: the rvalue await moves the value out.
CORIO_TEST(Future, MoveOnlyResultIsMovedOut) {
    EventLoop& loop = get_running_loop();
    Future<std::unique_ptr<int>> f(loop);
    f.set_result(std::make_unique<int>(9));
    std::unique_ptr<int> p = co_await std::move(f);
    CO_ASSERT_TRUE(p != nullptr);
    EXPECT_EQ(*p, 9);
}

namespace {
Coro<std::string> takes_the_box(Future<std::unique_ptr<int>> f) {
    std::string got;
    try {
        std::unique_ptr<int> p = co_await f;
        got = p ? std::to_string(*p) : "null";
    } catch (const std::logic_error& e) {
        got = e.what();
    }
    co_return got;
}
}  // namespace

// A move-only result can be taken once. Two tasks awaiting one Future<unique_ptr>: the first
// takes it, the second is refused, and so is result() afterwards (they used to get a null
// pointer without a word; asyncio shares one object, which C++ cannot do without a copy).
CORIO_TEST(Future, AMoveOnlyResultIsTakenOnceAndThenRefused) {
    EventLoop& loop = get_running_loop();
    Future<std::unique_ptr<int>> f(loop);
    Task<std::string> first = create_task(takes_the_box(f));
    Task<std::string> second = create_task(takes_the_box(f));
    co_await sleep(0s);
    f.set_result(std::make_unique<int>(42));
    std::string a = co_await first;
    std::string b = co_await second;
    EXPECT_EQ(a, "42");
    EXPECT_EQ(b, "the result of a move-only type was already taken");
    EXPECT_THROW((void)f.result(), std::logic_error);
}
