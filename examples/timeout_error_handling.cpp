// Seed "Error Handling": a timeout scope around a fetch, and errors turned into values.
//   async with asyncio.timeout(5.0): return await fetch_data(url)
//   except asyncio.TimeoutError: return {"error": "timeout"}
//   except Exception as e: return {"error": str(e)}
#include <corio/corio.hpp>

#include <iostream>
#include <map>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using Dict = std::map<std::string, std::string>;

corio::Coro<Dict> fetch_data(std::string url) {
    if (url == "slow") co_await corio::sleep(10s);
    if (url == "broken") throw std::runtime_error("host unreachable");
    co_await corio::sleep(10ms);
    co_return Dict{{"url", url}, {"data", "..."}};
}

corio::Coro<Dict> safe_fetch(std::string url) {
    try {
        co_return co_await corio::timeout(200ms, [&](corio::Timeout&) -> corio::Coro<Dict> {
            co_return co_await fetch_data(url);
        });
    } catch (const corio::TimeoutError&) {
        co_return Dict{{"error", "timeout"}};
    } catch (const std::exception& e) {
        co_return Dict{{"error", e.what()}};
    }
}

corio::Coro<int> main_coro() {
    Dict ok = co_await safe_fetch("fast");
    Dict slow = co_await safe_fetch("slow");
    Dict broken = co_await safe_fetch("broken");
    std::cout << "fast: " << ok["data"] << "\nslow: " << slow["error"] << "\nbroken: " << broken["error"] << "\n";
    // wait_for is the one-await form of the same thing.
    bool timed_out = false;
    try {
        co_await corio::wait_for(fetch_data("slow"), 100ms);
    } catch (const corio::TimeoutError&) {
        timed_out = true;
    }
    std::cout << "wait_for timed out: " << std::boolalpha << timed_out << "\n";
    co_return (ok["data"] == "..." && slow["error"] == "timeout" && broken["error"] == "host unreachable" && timed_out)
        ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
