// Helpers the queue suites share (tests/test_queue*.cpp): one get, put or join as a task,
// whether a task fails with a given exception, draining a queue, and the CO_EXPECT_* checks of
// an await.
#pragma once

#include <corio/coro.hpp>
#include <corio/queue.hpp>
#include <corio/task.hpp>

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#define CO_EXPECT_THROWS(E, ...)                                    \
    do {                                                            \
        bool corio_threw_ = false;                                  \
        try {                                                       \
            (void)(co_await __VA_ARGS__);                           \
        } catch (const E&) {                                        \
            corio_threw_ = true;                                    \
        }                                                           \
        EXPECT_TRUE(corio_threw_) << #__VA_ARGS__ " did not throw " #E; \
    } while (0)

// Named locals rather than co_await inside EXPECT_*: compiler-bugs.md G2.
#define CO_EXPECT_FAILS(E, task)                                             \
    do {                                                                     \
        const bool corio_failed_ = co_await corio_test::fails_with<E>(task); \
        EXPECT_TRUE(corio_failed_) << #task " did not fail with " #E;        \
    } while (0)
#define CO_EXPECT_AWAIT_EQ(awaitable, expected)      \
    do {                                             \
        auto corio_value_ = co_await awaitable;      \
        EXPECT_EQ(corio_value_, expected);           \
    } while (0)

namespace corio_test {

// One get or put as a task, like asyncio's create_task(q.get()).
template <class Q>
corio::Coro<typename Q::value_type> get_one(Q& q) {
    co_return co_await q.get();
}
template <class Q>
corio::Coro<> put_one(Q& q, typename Q::value_type v) {
    co_await q.put(std::move(v));
}
template <class Q>
corio::Coro<> join_one(Q& q) {
    co_await q.join();
}

// True when awaiting `t` throws E; retrieves the task's outcome either way.
template <class E, class T>
corio::Coro<bool> fails_with(corio::Task<T> t) {
    try {
        co_await std::move(t);
    } catch (const E&) {
        co_return true;
    } catch (...) {
    }
    co_return false;
}

template <class Q>
std::vector<typename Q::value_type> drain(Q& q) {
    std::vector<typename Q::value_type> out;
    while (!q.empty()) out.push_back(q.get_nowait());
    return out;
}

}  // namespace corio_test
