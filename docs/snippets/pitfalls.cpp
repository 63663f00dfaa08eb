// The seeds' common pitfalls, and what corio does about each. Runs in debug mode with an
// exception handler that records every report, so the reports themselves are checked.
#include <corio/corio.hpp>

#include <atomic>
#include <future>
#include <iostream>
#include <list>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

std::vector<std::string> reports;

corio::Coro<std::string> fetch_data(std::string url) {
    co_await corio::sleep(5ms);
    co_return "data for " + url;
}

// [blocking-loop]
corio::Coro<> blocks_the_loop() {
    std::this_thread::sleep_for(150ms);  // time.sleep(): every other task waits too
    co_return;
}

corio::Coro<> lets_others_run() {
    co_await corio::sleep(150ms);        // asyncio.sleep(): other tasks run meanwhile
}
// [end blocking-loop]

// [forgotten-await]
corio::Coro<> forgetful() {
    // fetch_data("x");             does not compile quietly: Coro is [[nodiscard]]
    auto pending = fetch_data("x");  // compiles, but never runs: in debug mode its destruction
    co_return;                       // reports "coroutine '...fetch_data...' was never awaited"
}
// [end forgotten-await]

// [fire-and-forget]
std::list<corio::Task<>> background_tasks;  // to keep track of them, not to keep them alive

corio::Coro<> job(int i) {
    co_await corio::sleep(std::chrono::milliseconds(i));
    if (i == 3) throw std::runtime_error("job 3 failed");
}

void schedule(corio::Coro<> coro) {
    auto task = corio::create_task(std::move(coro));
    auto where = background_tasks.insert(background_tasks.end(), task);
    task.add_done_callback([where] { background_tasks.erase(where); });
}

corio::Coro<> fire_and_forget() {
    for (int i = 1; i <= 5; ++i) schedule(job(i));
    (void)corio::create_task(job(2));  // no handle at all: the loop still runs it to the end
    while (!background_tasks.empty()) co_await corio::sleep(1ms);
    // job 3's exception was never retrieved: the loop reported it when its last handle went.
}
// [end fire-and-forget]

// [run-in-loop]
corio::Coro<std::string> mixed() {
    try {
        corio::run(fetch_data("x"));  // asyncio.run() from inside a running loop
    } catch (const std::logic_error& e) {
        std::cout << e.what() << '\n';  // corio::run() cannot be called from a running event loop
    }
    co_return co_await fetch_data("x");  // in async code: co_await it (or create_task it)
}
// [end run-in-loop]

// [thread-safety]
int requests = 0;        // touched only by coroutines of the loop's thread: no lock needed
std::atomic<int> hits{0};  // touched by pool threads too: std::atomic (or a std::mutex)

void count_hit() { hits.fetch_add(1, std::memory_order_relaxed); }

corio::Coro<> handle_request() {
    ++requests;
    co_await corio::to_thread(count_hit);
}

// Code on another thread reaches the loop only through its thread-safe entries.
std::string from_another_thread(corio::EventLoop* loop) {
    loop->call_soon_threadsafe([] { ++requests; });  // runs on the loop's thread
    std::future<std::string> f = corio::run_coroutine_threadsafe(fetch_data("y"), *loop);
    return f.get();  // blocks this thread, not the loop
}

corio::Coro<std::string> threads() {
    co_await corio::gather(handle_request(), handle_request());
    co_return co_await corio::to_thread(from_another_thread, &corio::get_running_loop());
}
// [end thread-safety]

bool reported(const std::string& what) {
    for (const auto& r : reports)
        if (r.find(what) != std::string::npos) return true;
    return false;
}

corio::Coro<int> main_coro() {
    corio::get_running_loop().set_exception_handler(
        [](corio::EventLoop&, const corio::ExceptionContext& c) { reports.push_back(c.message); });
    co_await corio::gather(blocks_the_loop(), lets_others_run());
    co_await forgetful();
    co_await fire_and_forget();
    std::string m = co_await mixed();
    std::string t = co_await threads();
    for (const auto& r : reports) std::cout << "report: " << r << '\n';
    bool ok = reported("blocked the event loop") && reported("was never awaited") &&
              reported("exception was never retrieved") && m == "data for x" && t == "data for y" &&
              requests == 3 && hits == 2;
    co_return ok ? 0 : 1;
}

int main() { return corio::run(main_coro(), corio::RunOptions{.debug = true}); }
