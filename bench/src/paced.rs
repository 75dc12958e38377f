//! A producer that sends at a fixed rate, for latency below saturation.
//!
//! `rdkafka_performance -r` paces one record at a time: after each it polls
//! in a loop until the record's share of a second has passed. That spins one
//! of this machine's two cores, and since each wait starts after the record's
//! own enqueue its rate falls short of the target (55-57 MB/s for a target of
//! 113-130). This one is the same client, librdkafka (through rdkafka-sys,
//! which the benchmark builds anyway), driven by a clock: every millisecond it
//! enqueues the records due by then and sleeps until the next. Payloads start
//! `LATENCY:<wall clock µs>`, as rdkafka_performance's, so its consumer (`-l`)
//! measures end-to-end latency of these records the same way.

use std::ffi::{c_char, c_void, CStr, CString};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka_sys as rd;

/// What a paced run delivered.
pub struct Paced {
    pub delivered: usize,
    pub errors: usize,
    /// Enqueue to acknowledgement, microseconds, sorted.
    pub latencies_us: Vec<u64>,
    pub seconds: f64,
}

/// Shared with the delivery callback (librdkafka's opaque), read after the run.
struct Reports {
    start: Instant,
    delivered: usize,
    errors: usize,
    latencies_us: Vec<u64>,
}

unsafe extern "C" fn delivered(_: *mut rd::rd_kafka_t, msg: *const rd::rd_kafka_message_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Reports` that `run` owns and outlives the handle;
    // callbacks run on the thread calling rd_kafka_poll/flush, which is `run`'s.
    let reports = unsafe { &mut *(opaque as *mut Reports) };
    let msg = unsafe { &*msg };
    if msg.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        let sent_ns = msg._private as u64;
        let now_ns = reports.start.elapsed().as_nanos() as u64;
        reports.latencies_us.push(now_ns.saturating_sub(sent_ns) / 1000);
        reports.delivered += 1;
    } else {
        reports.errors += 1;
    }
}

fn set(conf: *mut rd::rd_kafka_conf_t, key: &str, value: &str) -> Result<(), String> {
    let (k, v) = (CString::new(key).unwrap(), CString::new(value).unwrap());
    let mut err = [0 as c_char; 512];
    // SAFETY: valid NUL-terminated strings and a buffer of the length given.
    let r = unsafe { rd::rd_kafka_conf_set(conf, k.as_ptr(), v.as_ptr(), err.as_mut_ptr(), err.len()) };
    if r == rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
        Ok(())
    } else {
        Err(format!(
            "{key}={value}: {}",
            unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy()
        ))
    }
}

/// Sends `rate` records of `size` bytes per second to `topic` for `seconds`
/// (acks=all, `linger.ms` given), then waits for every acknowledgement.
pub fn run(
    bootstrap: &str,
    topic: &str,
    size: usize,
    rate: f64,
    seconds: f64,
    linger_ms: u32,
) -> Result<Paced, String> {
    let mut reports = Box::new(Reports {
        start: Instant::now(),
        delivered: 0,
        errors: 0,
        latencies_us: Vec::with_capacity((rate * seconds) as usize + 1),
    });
    // SAFETY (this block): librdkafka's documented life cycle; the conf is
    // owned by the handle once rd_kafka_new succeeds, the topic and handle are
    // destroyed before `reports` is dropped.
    unsafe {
        let conf = rd::rd_kafka_conf_new();
        for (k, v) in [
            ("bootstrap.servers", bootstrap.to_string()),
            ("acks", "all".to_string()),
            ("linger.ms", linger_ms.to_string()),
            ("queue.buffering.max.kbytes", "1048576".to_string()),
        ] {
            if let Err(e) = set(conf, k, &v) {
                rd::rd_kafka_conf_destroy(conf);
                return Err(e);
            }
        }
        rd::rd_kafka_conf_set_dr_msg_cb(conf, Some(delivered));
        rd::rd_kafka_conf_set_opaque(conf, &mut *reports as *mut Reports as *mut c_void);
        let mut err = [0 as c_char; 512];
        let rk = rd::rd_kafka_new(
            rd::rd_kafka_type_t::RD_KAFKA_PRODUCER,
            conf,
            err.as_mut_ptr(),
            err.len(),
        );
        if rk.is_null() {
            rd::rd_kafka_conf_destroy(conf);
            return Err(CStr::from_ptr(err.as_ptr()).to_string_lossy().into_owned());
        }
        let name = CString::new(topic).unwrap();
        let rkt = rd::rd_kafka_topic_new(rk, name.as_ptr(), std::ptr::null_mut());
        let mut payload = vec![b'x'; size.max(32)];
        let total = (rate * seconds) as usize;
        let begin = Instant::now();
        let mut sent = 0usize;
        while sent < total {
            let due = ((begin.elapsed().as_secs_f64() * rate) as usize).min(total);
            while sent < due {
                let wall_us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_micros();
                let head = format!("LATENCY:{wall_us}\0");
                payload[..head.len()].copy_from_slice(head.as_bytes());
                let sent_ns = reports.start.elapsed().as_nanos() as usize;
                let r = rd::rd_kafka_produce(
                    rkt,
                    -1, // RD_KAFKA_PARTITION_UA: the partitioner chooses
                    rd::RD_KAFKA_MSG_F_COPY,
                    payload.as_mut_ptr() as *mut c_void,
                    payload.len(),
                    std::ptr::null(),
                    0,
                    sent_ns as *mut c_void,
                );
                if r == 0 {
                    sent += 1;
                } else {
                    // Queue full: serve acknowledgements, then try again.
                    rd::rd_kafka_poll(rk, 1);
                }
            }
            rd::rd_kafka_poll(rk, 0);
            let next = begin + Duration::from_secs_f64((sent + 1) as f64 / rate);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait.min(Duration::from_millis(1)));
            }
        }
        rd::rd_kafka_flush(rk, 60_000);
        let seconds = begin.elapsed().as_secs_f64();
        rd::rd_kafka_topic_destroy(rkt);
        rd::rd_kafka_destroy(rk);
        let mut latencies_us = std::mem::take(&mut reports.latencies_us);
        latencies_us.sort_unstable();
        Ok(Paced {
            delivered: reports.delivered,
            errors: reports.errors,
            latencies_us,
            seconds,
        })
    }
}
