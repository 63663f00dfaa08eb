// Seed "Task Management with create_task": start tasks at once, do other work, then await.
#include <corio/corio.hpp>

#include <iostream>
#include <string>

using namespace std::chrono_literals;

corio::Coro<std::string> fetch_data(std::string url) {
    co_await corio::sleep(100ms);
    co_return "data for " + url;
}

corio::Coro<int> background_tasks() {
    // Start task immediately, don't wait.
    auto task1 = corio::create_task(fetch_data("url1"), "fetch-url1");
    auto task2 = corio::create_task(fetch_data("url2"), "fetch-url2");

    // Do other work here.
    co_await corio::sleep(50ms);
    const bool done_early = task1.done();  // its 100 ms are not up: false
    std::cout << "other work done; " << task1.name() << " done yet? " << std::boolalpha << done_early << "\n";

    // Wait for results when needed.
    std::string result1 = co_await task1;
    std::string result2 = co_await task2;
    std::cout << result1 << "\n" << result2 << "\n";
    co_return !done_early && result1 == "data for url1" && result2 == "data for url2" ? 0 : 1;
}

int main() { return corio::run(background_tasks()); }
