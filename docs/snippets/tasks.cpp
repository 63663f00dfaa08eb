// create_task, TaskGroup, gather.
#include <corio/corio.hpp>

#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

bool slow_was_cancelled = false;

corio::Coro<std::string> fetch_data(std::string url) {
    co_await corio::sleep(50ms);
    if (url == "bad") throw std::runtime_error("cannot fetch " + url);
    co_return "data for " + url;
}

// [create-task]
corio::Coro<> background_tasks() {
    // Start the tasks immediately, don't wait. The name shows up in debug reports.
    auto task1 = corio::create_task(fetch_data("url1"), "fetch-url1");
    auto task2 = corio::create_task(fetch_data("url2"), "fetch-url2");

    // Do other work here.
    co_await corio::sleep(10ms);

    // Wait for the results when needed.
    std::string result1 = co_await task1;
    std::string result2 = co_await task2;
    std::cout << result1 << ", " << result2 << '\n';
}
// [end create-task]

// [taskgroup]
corio::Coro<> structured() {
    corio::Task<std::string> task_a, task_b;
    co_await corio::task_group([&](corio::TaskGroup& tg) -> corio::Coro<> {
        task_a = tg.create_task(fetch_data("a"));
        task_b = tg.create_task(fetch_data("b"));
        co_return;
    });
    // Both tasks are done here.
    std::cout << task_a.result() << ", " << task_b.result() << '\n';
}
// [end taskgroup]

// [gather]
corio::Coro<> gather_three() {
    auto results = co_await corio::gather(fetch_data("a"), fetch_data("b"), fetch_data("c"));
    auto& [a, b, c] = results;  // a std::tuple, in argument order
    std::cout << a << ", " << b << ", " << c << '\n';
}
// [end gather]

// [gather-list]
corio::Coro<std::vector<corio::Outcome<std::string>>> fetch_multiple() {
    std::vector<std::string> urls{"url1", "bad", "url3"};
    std::vector<corio::Coro<std::string>> fetches;
    for (const auto& url : urls) fetches.push_back(fetch_data(url));
    // return_exceptions: continue if one fails; each Outcome holds a value or an exception.
    auto results = co_await corio::gather(corio::return_exceptions, std::move(fetches));
    for (auto& r : results) {
        if (r.has_value()) {
            std::cout << "ok: " << r.value() << '\n';
        } else {
            try {
                std::rethrow_exception(r.error());  // r.value() would rethrow it too
            } catch (const std::exception& e) {
                std::cout << "failed: " << e.what() << '\n';
            }
        }
    }
    co_return results;
}
// [end gather-list]

corio::Coro<> slow() {
    try {
        co_await corio::sleep(1h);
    } catch (const corio::CancelledError&) {
        slow_was_cancelled = true;
        throw;
    }
}

// [gather-fail-fast]
corio::Coro<> fail_fast() {
    try {
        co_await corio::gather(fetch_data("a"), fetch_data("bad"), slow());
    } catch (const std::runtime_error& e) {
        // By now the other two were cancelled and have finished: nothing is left running.
        std::cout << "gather failed: " << e.what() << '\n';
    }
}
// [end gather-fail-fast]

corio::Coro<int> main_coro() {
    co_await background_tasks();
    co_await structured();
    co_await gather_three();
    auto outcomes = co_await fetch_multiple();
    if (outcomes.size() != 3 || !outcomes[0] || outcomes[1] || !outcomes[2]) co_return 1;
    co_await fail_fast();
    co_return slow_was_cancelled && corio::all_tasks().size() == 1 ? 0 : 1;  // only main_coro's task is left
}

int main() { return corio::run(main_coro()); }
