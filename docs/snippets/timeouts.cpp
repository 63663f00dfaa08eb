// Timeouts: the timeout() scope, wait_for, timeout_at/reschedule, and the seed's safe_fetch.
// Written with real durations and tested in virtual time (corio::testing::MockClock), so the
// test takes milliseconds.
#include <corio/testing.hpp>

#include <iostream>
#include <map>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using Dict = std::map<std::string, std::string>;

corio::Coro<std::string> slow_operation() {
    co_await corio::sleep(10s);
    co_return "slow result";
}

std::string stored;
corio::Coro<> store(std::string data) {
    co_await corio::sleep(1s);
    stored = std::move(data);
}

// [timeout]
corio::Coro<> main_coro() {
    co_await corio::timeout(5s, [&](corio::Timeout&) -> corio::Coro<> {  // async with asyncio.timeout(5.0):
        std::string data = co_await slow_operation();                     //     data = await slow_operation()
        co_await store(data);                                             //     (it may wrap several awaits)
    });
}
// [end timeout]

// [wait-for]
corio::Coro<> wait_for_slow() {
    try {
        std::string result = co_await corio::wait_for(slow_operation(), 5s);
        std::cout << result << '\n';
    } catch (const corio::TimeoutError&) {
        std::cout << "operation timed out\n";
    }
}
// [end wait-for]

corio::Coro<Dict> fetch_data(std::string url) {
    if (url == "slow") co_await corio::sleep(1h);
    if (url == "broken") throw std::runtime_error("host unreachable");
    co_await corio::sleep(100ms);
    co_return Dict{{"url", url}, {"data", "..."}};
}

// [safe-fetch]
corio::Coro<Dict> safe_fetch(std::string url) {
    try {
        co_return co_await corio::timeout(5s, [&](corio::Timeout&) -> corio::Coro<Dict> {
            co_return co_await fetch_data(url);
        });
    } catch (const corio::TimeoutError&) {
        co_return Dict{{"error", "timeout"}};
    } catch (const std::exception& e) {  // never catches a CancelledError: see Cancellation
        co_return Dict{{"error", e.what()}};
    }
}
// [end safe-fetch]

// [reschedule]
corio::Coro<std::string> two_steps() {
    corio::EventLoop& loop = corio::get_running_loop();
    co_return co_await corio::timeout_at(loop.time() + 15s, [&](corio::Timeout& t) -> corio::Coro<std::string> {
        std::string first = co_await slow_operation();
        t.reschedule(loop.time() + 15s);  // cm.reschedule(loop.time() + 15): 15 s more from now
        std::string second = co_await slow_operation();
        co_return first + " + " + second;
    });
}
// [end reschedule]

CORIO_TEST(Timeouts, ScopeExpiresAfterFiveSeconds) {
    corio::testing::MockClock clock;
    auto start = clock.now();
    bool timed_out = false;
    try {
        co_await main_coro();
    } catch (const corio::TimeoutError&) {
        timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(clock.seconds_since(start), 5.0);
    EXPECT_EQ(stored, "");
}

CORIO_TEST(Timeouts, WaitForGivesUp) {
    corio::testing::MockClock clock;
    auto start = clock.now();
    co_await wait_for_slow();
    EXPECT_EQ(clock.seconds_since(start), 5.0);
}

CORIO_TEST(Timeouts, SafeFetch) {
    corio::testing::MockClock clock;
    Dict ok = co_await safe_fetch("fast");
    Dict slow = co_await safe_fetch("slow");
    Dict broken = co_await safe_fetch("broken");
    EXPECT_EQ(ok["data"], "...");
    EXPECT_EQ(slow["error"], "timeout");
    EXPECT_EQ(broken["error"], "host unreachable");
}

CORIO_TEST(Timeouts, Reschedule) {
    corio::testing::MockClock clock;
    auto start = clock.now();
    std::string both = co_await two_steps();  // 20 s in all: past the first deadline, not the second
    EXPECT_EQ(both, "slow result + slow result");
    EXPECT_EQ(clock.seconds_since(start), 20.0);
}
