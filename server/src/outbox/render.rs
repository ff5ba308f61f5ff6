//! The words of a patient's messages, in Vietnamese and English.
//!
//! Nothing clinical is ever written: not the reason for the visit, not the specialty or the
//! clinician (an "oncology" appointment says what the patient has), not the hospital's name for
//! the same reason. A message says when the visit is, in the patient's local time, and how to
//! join it. SMS goes without diacritics unless the deployment pays for unicode parts
//! (`sms.unicode`).

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};

use super::contacts::Language;
use crate::domain::time::Zone;

/// What a patient is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    Booked,
    Rescheduled,
    Cancelled,
    /// A reminder some minutes before the visit.
    Reminder,
    /// The room is open.
    JoinNow,
    /// The clinician is running late by some minutes.
    RunningLate,
}

impl Notice {
    pub const ALL: [Notice; 6] = [
        Notice::Booked,
        Notice::Rescheduled,
        Notice::Cancelled,
        Notice::Reminder,
        Notice::JoinNow,
        Notice::RunningLate,
    ];

    /// As stored in `event_kind`, and as Zalo templates are configured.
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::Booked => "consultation.booked",
            Notice::Rescheduled => "consultation.rescheduled",
            Notice::Cancelled => "consultation.cancelled",
            Notice::Reminder => "consultation.reminder",
            Notice::JoinNow => "consultation.join_now",
            Notice::RunningLate => "consultation.running_late",
        }
    }

    pub fn parse(s: &str) -> Option<Notice> {
        Notice::ALL.into_iter().find(|n| n.as_str() == s)
    }
}

/// `at` as the patient reads it: `09:00 Thứ Hai 14/12/2026` or `09:00 Monday 14/12/2026`.
pub fn local_time(at: DateTime<Utc>, zone: Zone, lang: Language) -> String {
    let local = zone.to_local(at);
    let day = match (lang, local.weekday()) {
        (Language::Vi, Weekday::Mon) => "Thứ Hai",
        (Language::Vi, Weekday::Tue) => "Thứ Ba",
        (Language::Vi, Weekday::Wed) => "Thứ Tư",
        (Language::Vi, Weekday::Thu) => "Thứ Năm",
        (Language::Vi, Weekday::Fri) => "Thứ Sáu",
        (Language::Vi, Weekday::Sat) => "Thứ Bảy",
        (Language::Vi, Weekday::Sun) => "Chủ Nhật",
        (Language::En, Weekday::Mon) => "Monday",
        (Language::En, Weekday::Tue) => "Tuesday",
        (Language::En, Weekday::Wed) => "Wednesday",
        (Language::En, Weekday::Thu) => "Thursday",
        (Language::En, Weekday::Fri) => "Friday",
        (Language::En, Weekday::Sat) => "Saturday",
        (Language::En, Weekday::Sun) => "Sunday",
    };
    format!(
        "{:02}:{:02} {day} {:02}/{:02}/{}",
        local.hour(),
        local.minute(),
        local.day(),
        local.month(),
        local.year()
    )
}

/// What one message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Words {
    /// An email's subject.
    pub subject: String,
    /// The text of an SMS, and the body of an email.
    pub text: String,
}

/// The words of `notice` for a visit at `when` (already [`local_time`]), joined by `link` when
/// there is one to give; `late` is the delay of a running-late notice.
pub fn words(notice: Notice, lang: Language, when: &str, link: Option<&str>, late: i32) -> Words {
    let join = |vi: &str, en: &str| match (lang, link) {
        (Language::Vi, Some(l)) => format!(" {vi}: {l}"),
        (Language::En, Some(l)) => format!(" {en}: {l}"),
        (_, None) => String::new(),
    };
    let (subject, text) = match (notice, lang) {
        (Notice::Booked, Language::Vi) => (
            "Đã đặt lịch khám từ xa".to_owned(),
            format!(
                "Lịch khám từ xa của bạn: {when}.{}",
                join("Vào phòng khám", "")
            ),
        ),
        (Notice::Booked, Language::En) => (
            "Your telehealth visit is booked".to_owned(),
            format!(
                "Your telehealth visit is booked for {when}.{}",
                join("", "Join with")
            ),
        ),
        (Notice::Rescheduled, Language::Vi) => (
            "Lịch khám từ xa đã đổi giờ".to_owned(),
            format!(
                "Lịch khám từ xa của bạn đã đổi sang {when}.{}",
                join("Vào phòng khám", "")
            ),
        ),
        (Notice::Rescheduled, Language::En) => (
            "Your telehealth visit has moved".to_owned(),
            format!(
                "Your telehealth visit has moved to {when}.{}",
                join("", "Join with")
            ),
        ),
        (Notice::Cancelled, Language::Vi) => (
            "Lịch khám từ xa đã hủy".to_owned(),
            format!("Lịch khám từ xa lúc {when} đã hủy. Trạm y tế sẽ liên hệ để hẹn lại."),
        ),
        (Notice::Cancelled, Language::En) => (
            "Your telehealth visit was cancelled".to_owned(),
            format!(
                "Your telehealth visit at {when} was cancelled. Your clinic will contact you to rebook."
            ),
        ),
        (Notice::Reminder, Language::Vi) => (
            "Nhắc lịch khám từ xa".to_owned(),
            format!(
                "Nhắc lịch: khám từ xa lúc {when}.{}",
                join("Vào phòng khám", "")
            ),
        ),
        (Notice::Reminder, Language::En) => (
            "Reminder: your telehealth visit".to_owned(),
            format!(
                "Reminder: your telehealth visit is at {when}.{}",
                join("", "Join with")
            ),
        ),
        (Notice::JoinNow, Language::Vi) => (
            "Phòng khám từ xa đã mở".to_owned(),
            format!(
                "Phòng khám từ xa lúc {when} đã mở.{}",
                join("Mời bạn vào", "")
            ),
        ),
        (Notice::RunningLate, Language::Vi) => (
            "Bác sĩ sẽ trễ".to_owned(),
            format!(
                "Bác sĩ sẽ trễ khoảng {late} phút so với giờ khám {when}. Bạn vẫn giữ chỗ.{}",
                join("Vào phòng khám", "")
            ),
        ),
        (Notice::RunningLate, Language::En) => (
            "Your specialist is running late".to_owned(),
            format!(
                "Your specialist is running about {late} minutes late for your visit at {when}. Your place is kept.{}",
                join("", "Join with")
            ),
        ),
        (Notice::JoinNow, Language::En) => (
            "Your telehealth visit room is open".to_owned(),
            format!(
                "Your telehealth visit room for {when} is open.{}",
                join("", "Join now")
            ),
        ),
    };
    Words { subject, text }
}

/// `text` without Vietnamese diacritics (`đ` as `d`), case kept: what a GSM-7 SMS can carry.
pub fn without_marks(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| match c {
            'đ' => 'd',
            'Đ' => 'D',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .expect("a valid instant")
    }

    #[test]
    fn times_are_local_and_in_the_patients_language() {
        let zone = Zone::parse("Asia/Ho_Chi_Minh").expect("a zone");
        let t = at("2026-12-14T02:00:00Z");
        assert_eq!(
            local_time(t, zone, Language::Vi),
            "09:00 Thứ Hai 14/12/2026"
        );
        assert_eq!(local_time(t, zone, Language::En), "09:00 Monday 14/12/2026");
    }

    #[test]
    fn every_notice_has_words_in_both_languages_and_names_the_link() {
        for n in Notice::ALL {
            for lang in [Language::Vi, Language::En] {
                let w = words(
                    n,
                    lang,
                    "09:00 Monday 14/12/2026",
                    Some("https://x/visit#t"),
                    20,
                );
                assert!(w.text.contains("09:00"), "{n:?} {lang:?}: {}", w.text);
                assert_eq!(
                    w.text.contains("https://x/visit#t"),
                    n != Notice::Cancelled,
                    "{n:?} {lang:?}"
                );
                assert!(!w.subject.is_empty());
                assert_eq!(Notice::parse(n.as_str()), Some(n));
            }
        }
        let vi = words(Notice::Reminder, Language::Vi, "09:00", None, 0);
        let late = words(Notice::RunningLate, Language::En, "09:00", None, 20);
        assert!(late.text.contains("about 20 minutes late"), "{}", late.text);
        assert_eq!(vi.text, "Nhắc lịch: khám từ xa lúc 09:00.");
    }

    #[test]
    fn sms_text_loses_its_marks_but_not_its_letters() {
        assert_eq!(
            without_marks("Lịch khám từ xa đã hủy. Đến trạm"),
            "Lich kham tu xa da huy. Den tram"
        );
    }
}
