//! Deterministic generator for the Vietnamese telehealth demo network.
//!
//! This module holds the reference data the demo is built from (the 34 provincial-level units that exist
//! since the 2025 reorganisation, eight well-known hub hospitals, the specialties, pools of place names and
//! personal names) and [`generate`], which turns two sizes into a complete network: hubs with specialists,
//! care centres with their rural clinicians, and patients registered at those centres.
//!
//! It is pure: no I/O, no clock, no database. The seeder turns a [`DemoNetwork`] into rows.
//!
//! Same arguments, same network, always: every random choice comes from ChaCha8 with a fixed seed (one
//! stream per section, so changing the number of patients does not reshuffle facilities), ages are measured
//! against a fixed reference date instead of today, and only slices and `Vec`s are iterated, never a
//! hash map.

use std::collections::BTreeSet;

use chrono::{Datelike, Days, NaiveDate};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The complete demo network produced by [`generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoNetwork {
    pub specialties: Vec<SpecialtySeed>,
    pub hubs: Vec<FacilitySeed>,
    pub care_centres: Vec<FacilitySeed>,
    pub specialists: Vec<ClinicianSeed>,
    pub rural_clinicians: Vec<ClinicianSeed>,
    pub patients: Vec<PatientSeed>,
}

/// A medical specialty: a stable snake_case code plus display names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialtySeed {
    pub code: &'static str,
    pub name_en: &'static str,
    pub name_vi: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FacilityKindSeed {
    HubHospital,
    CareCentre,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilitySeed {
    pub code: String,
    pub name: String,
    pub kind: FacilityKindSeed,
    pub level: &'static str,
    pub province: &'static str,
    pub address: String,
    pub time_zone: &'static str,
    pub departments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicianSeed {
    pub facility_code: String,
    pub full_name: String,
    pub title: &'static str,
    pub department: String,
    pub specialty_codes: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientSeed {
    pub full_name: String,
    pub date_of_birth: NaiveDate,
    pub sex: &'static str,
    pub phone: String,
    pub national_id: Option<String>,
    pub home_facility_code: String,
}

/// Fixed seed: the demo must be identical on every machine and every run.
const SEED: u64 = 0x5445_4c45_4845_414c;

// One ChaCha stream per section, so that e.g. asking for more patients per centre leaves the facilities and
// clinicians exactly as they were.
const STREAM_CARE_CENTRES: u64 = 1;
const STREAM_SPECIALISTS: u64 = 2;
const STREAM_RURAL_CLINICIANS: u64 = 3;
const STREAM_PATIENTS: u64 = 4;

/// Ages are computed against this date rather than today, which would make the output depend on the clock.
const REFERENCE_DATE: NaiveDate = NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid calendar date");

const TIME_ZONE: &str = "Asia/Ho_Chi_Minh";

/// Department every care centre has; rural clinicians sit in it.
const CARE_DEPARTMENT: &str = "Khám bệnh";

/// Regional centres are small hospitals (the former district health centres), so they have a few wards.
const REGIONAL_DEPARTMENTS: [&str; 3] = [CARE_DEPARTMENT, "Nội tổng hợp", "Sản - Nhi"];

/// Code of the specialty rural clinicians practise.
const GENERAL_PRACTICE: &str = "general_practice";

struct Specialty {
    seed: SpecialtySeed,
    /// Hub department a specialist with this primary specialty works in.
    department: &'static str,
    /// Plausible second specialties, so that dual-specialty clinicians make clinical sense.
    related: &'static [&'static str],
}

const fn specialty(
    code: &'static str,
    name_en: &'static str,
    name_vi: &'static str,
    department: &'static str,
    related: &'static [&'static str],
) -> Specialty {
    Specialty {
        seed: SpecialtySeed {
            code,
            name_en,
            name_vi,
        },
        department,
        related,
    }
}

/// General practice first, then the specialties hubs offer by teleconsultation.
const SPECIALTIES: [Specialty; 12] = [
    specialty(
        GENERAL_PRACTICE,
        "General practice",
        "Y học gia đình",
        CARE_DEPARTMENT,
        &[],
    ),
    specialty(
        "cardiology",
        "Cardiology",
        "Tim mạch",
        "Khoa Tim mạch",
        &["endocrinology"],
    ),
    specialty(
        "endocrinology",
        "Endocrinology",
        "Nội tiết",
        "Khoa Nội tiết",
        &["cardiology"],
    ),
    specialty(
        "paediatrics",
        "Paediatrics",
        "Nhi khoa",
        "Khoa Nhi",
        &["infectious_diseases", "respiratory"],
    ),
    specialty(
        "obstetrics",
        "Obstetrics and gynaecology",
        "Sản phụ khoa",
        "Khoa Phụ sản",
        &["oncology"],
    ),
    specialty(
        "dermatology",
        "Dermatology",
        "Da liễu",
        "Khoa Da liễu",
        &["infectious_diseases"],
    ),
    specialty(
        "neurology",
        "Neurology",
        "Thần kinh",
        "Khoa Thần kinh",
        &["psychiatry"],
    ),
    specialty(
        "oncology",
        "Oncology",
        "Ung bướu",
        "Khoa Ung bướu",
        &["respiratory"],
    ),
    specialty(
        "respiratory",
        "Respiratory medicine",
        "Hô hấp",
        "Khoa Hô hấp",
        &["infectious_diseases", "oncology"],
    ),
    specialty(
        "infectious_diseases",
        "Infectious diseases",
        "Truyền nhiễm",
        "Khoa Truyền nhiễm",
        &["respiratory", "dermatology"],
    ),
    specialty(
        "psychiatry",
        "Psychiatry",
        "Tâm thần",
        "Khoa Sức khỏe tâm thần",
        &["neurology"],
    ),
    specialty(
        "orthopaedics",
        "Orthopaedics and trauma",
        "Chấn thương chỉnh hình",
        "Khoa Chấn thương chỉnh hình",
        &["neurology"],
    ),
];

/// Broad region: decides which family names and hamlet words sound local.
#[derive(Clone, Copy)]
enum Region {
    North,
    Central,
    South,
}

/// Share (percent) of place and personal names drawn from an ethnic-minority pool instead of Kinh names.
#[derive(Clone, Copy)]
enum Ethnic {
    None,
    /// Thái, Tày, H'Mông and neighbours in the northern mountains.
    NorthernUplands(u32),
    /// Ê Đê, Gia Rai, Ba Na and neighbours in the Central Highlands (place names only).
    CentralHighlands(u32),
}

struct Province {
    name: &'static str,
    /// Centrally governed city ("thành phố") rather than province ("tỉnh").
    city: bool,
    region: Region,
    ethnic: Ethnic,
    /// Relative share of care centres: remote mountainous provinces rely on telehealth most.
    weight: u32,
    /// CCCD birth-place codes of the pre-2025 provinces merged into this one (first three digits of an id).
    id_codes: &'static [&'static str],
    /// Former districts whose health centres are now "Trung tâm Y tế khu vực ...".
    districts: &'static [&'static str],
}

const fn province(
    name: &'static str,
    city: bool,
    region: Region,
    ethnic: Ethnic,
    weight: u32,
    id_codes: &'static [&'static str],
    districts: &'static [&'static str],
) -> Province {
    Province {
        name,
        city,
        region,
        ethnic,
        weight,
        id_codes,
        districts,
    }
}

use Ethnic::{CentralHighlands, NorthernUplands};
use Region::{Central, North, South};

const PROVINCE_DATA: [Province; 34] = [
    province(
        "Hà Nội",
        true,
        North,
        Ethnic::None,
        2,
        &["001"],
        &[
            "Ba Vì",
            "Mỹ Đức",
            "Sóc Sơn",
            "Thạch Thất",
            "Ứng Hòa",
            "Phú Xuyên",
        ],
    ),
    province(
        "Huế",
        true,
        Central,
        Ethnic::None,
        2,
        &["046"],
        &["Phong Điền", "Quảng Điền", "A Lưới", "Phú Lộc", "Nam Đông"],
    ),
    province(
        "Hải Phòng",
        true,
        North,
        Ethnic::None,
        2,
        &["031", "030"],
        &[
            "Thủy Nguyên",
            "Tiên Lãng",
            "Vĩnh Bảo",
            "Cát Hải",
            "Kinh Môn",
            "Thanh Hà",
            "Ninh Giang",
        ],
    ),
    province(
        "Đà Nẵng",
        true,
        Central,
        CentralHighlands(15),
        2,
        &["048", "049"],
        &[
            "Hòa Vang",
            "Nam Giang",
            "Tây Giang",
            "Đông Giang",
            "Phước Sơn",
            "Nam Trà My",
            "Tiên Phước",
        ],
    ),
    province(
        "Thành phố Hồ Chí Minh",
        true,
        South,
        Ethnic::None,
        2,
        &["079", "074", "077"],
        &[
            "Củ Chi",
            "Cần Giờ",
            "Hóc Môn",
            "Bình Chánh",
            "Côn Đảo",
            "Dầu Tiếng",
            "Xuyên Mộc",
        ],
    ),
    province(
        "Cần Thơ",
        true,
        South,
        Ethnic::None,
        2,
        &["092", "093", "094"],
        &[
            "Phong Điền",
            "Cờ Đỏ",
            "Vĩnh Thạnh",
            "Long Mỹ",
            "Trần Đề",
            "Mỹ Xuyên",
        ],
    ),
    province(
        "Lai Châu",
        false,
        North,
        NorthernUplands(60),
        5,
        &["012"],
        &[
            "Mường Tè",
            "Sìn Hồ",
            "Phong Thổ",
            "Tam Đường",
            "Than Uyên",
            "Tân Uyên",
            "Nậm Nhùn",
        ],
    ),
    province(
        "Điện Biên",
        false,
        North,
        NorthernUplands(60),
        5,
        &["011"],
        &[
            "Mường Nhé",
            "Mường Chà",
            "Tủa Chùa",
            "Tuần Giáo",
            "Điện Biên Đông",
            "Nậm Pồ",
            "Mường Ảng",
        ],
    ),
    province(
        "Sơn La",
        false,
        North,
        NorthernUplands(55),
        5,
        &["014"],
        &[
            "Sốp Cộp",
            "Bắc Yên",
            "Phù Yên",
            "Mộc Châu",
            "Thuận Châu",
            "Quỳnh Nhai",
            "Sông Mã",
            "Mường La",
        ],
    ),
    province(
        "Lạng Sơn",
        false,
        North,
        NorthernUplands(45),
        4,
        &["020"],
        &[
            "Bình Gia",
            "Văn Quan",
            "Đình Lập",
            "Tràng Định",
            "Lộc Bình",
            "Cao Lộc",
            "Bắc Sơn",
        ],
    ),
    province(
        "Quảng Ninh",
        false,
        North,
        NorthernUplands(10),
        2,
        &["022"],
        &[
            "Ba Chẽ",
            "Bình Liêu",
            "Tiên Yên",
            "Cô Tô",
            "Vân Đồn",
            "Hải Hà",
            "Đầm Hà",
        ],
    ),
    province(
        "Thanh Hóa",
        false,
        North,
        NorthernUplands(20),
        4,
        &["038"],
        &[
            "Mường Lát",
            "Quan Sơn",
            "Quan Hóa",
            "Bá Thước",
            "Lang Chánh",
            "Thường Xuân",
            "Như Xuân",
        ],
    ),
    province(
        "Nghệ An",
        false,
        Central,
        NorthernUplands(20),
        4,
        &["040"],
        &[
            "Kỳ Sơn",
            "Tương Dương",
            "Quế Phong",
            "Con Cuông",
            "Quỳ Châu",
            "Quỳ Hợp",
            "Anh Sơn",
        ],
    ),
    province(
        "Hà Tĩnh",
        false,
        Central,
        Ethnic::None,
        3,
        &["042"],
        &["Hương Khê", "Hương Sơn", "Vũ Quang", "Kỳ Anh", "Cẩm Xuyên"],
    ),
    province(
        "Cao Bằng",
        false,
        North,
        NorthernUplands(55),
        5,
        &["004"],
        &[
            "Bảo Lâm",
            "Bảo Lạc",
            "Hà Quảng",
            "Trùng Khánh",
            "Nguyên Bình",
            "Hạ Lang",
            "Quảng Hòa",
        ],
    ),
    province(
        "Tuyên Quang",
        false,
        North,
        NorthernUplands(55),
        5,
        &["008", "002"],
        &[
            "Đồng Văn",
            "Mèo Vạc",
            "Yên Minh",
            "Quản Bạ",
            "Hoàng Su Phì",
            "Xín Mần",
            "Na Hang",
            "Lâm Bình",
        ],
    ),
    province(
        "Lào Cai",
        false,
        North,
        NorthernUplands(55),
        5,
        &["010", "015"],
        &[
            "Bát Xát",
            "Mường Khương",
            "Si Ma Cai",
            "Bắc Hà",
            "Mù Cang Chải",
            "Trạm Tấu",
            "Văn Bàn",
        ],
    ),
    province(
        "Thái Nguyên",
        false,
        North,
        NorthernUplands(30),
        4,
        &["019", "006"],
        &[
            "Định Hóa",
            "Võ Nhai",
            "Đại Từ",
            "Pác Nặm",
            "Ba Bể",
            "Ngân Sơn",
            "Na Rì",
        ],
    ),
    province(
        "Phú Thọ",
        false,
        North,
        NorthernUplands(30),
        4,
        &["025", "026", "017"],
        &[
            "Tân Sơn",
            "Thanh Sơn",
            "Yên Lập",
            "Đà Bắc",
            "Mai Châu",
            "Lạc Sơn",
            "Tam Đảo",
        ],
    ),
    province(
        "Bắc Ninh",
        false,
        North,
        Ethnic::None,
        2,
        &["027", "024"],
        &[
            "Sơn Động",
            "Lục Ngạn",
            "Lục Nam",
            "Yên Thế",
            "Lương Tài",
            "Gia Bình",
        ],
    ),
    province(
        "Hưng Yên",
        false,
        North,
        Ethnic::None,
        2,
        &["033", "034"],
        &[
            "Tiên Lữ",
            "Phù Cừ",
            "Khoái Châu",
            "Thái Thụy",
            "Tiền Hải",
            "Quỳnh Phụ",
        ],
    ),
    province(
        "Ninh Bình",
        false,
        North,
        Ethnic::None,
        2,
        &["037", "035", "036"],
        &[
            "Nho Quan",
            "Kim Sơn",
            "Gia Viễn",
            "Hải Hậu",
            "Giao Thủy",
            "Lý Nhân",
        ],
    ),
    province(
        "Quảng Trị",
        false,
        Central,
        Ethnic::None,
        4,
        &["045", "044"],
        &[
            "Hướng Hóa",
            "Đakrông",
            "Gio Linh",
            "Minh Hóa",
            "Tuyên Hóa",
            "Lệ Thủy",
            "Bố Trạch",
        ],
    ),
    province(
        "Quảng Ngãi",
        false,
        Central,
        CentralHighlands(30),
        4,
        &["051", "062"],
        &[
            "Ba Tơ",
            "Minh Long",
            "Sơn Tây",
            "Trà Bồng",
            "Lý Sơn",
            "Đắk Glei",
            "Kon Plông",
            "Sa Thầy",
        ],
    ),
    province(
        "Gia Lai",
        false,
        Central,
        CentralHighlands(45),
        4,
        &["064", "052"],
        &[
            "Kbang",
            "Kông Chro",
            "Ia Grai",
            "Chư Prông",
            "Krông Pa",
            "An Lão",
            "Vân Canh",
        ],
    ),
    province(
        "Khánh Hòa",
        false,
        Central,
        CentralHighlands(10),
        3,
        &["056", "058"],
        &[
            "Khánh Vĩnh",
            "Khánh Sơn",
            "Cam Lâm",
            "Vạn Ninh",
            "Bác Ái",
            "Ninh Sơn",
            "Thuận Nam",
        ],
    ),
    province(
        "Lâm Đồng",
        false,
        Central,
        CentralHighlands(30),
        4,
        &["068", "067", "060"],
        &[
            "Lạc Dương",
            "Đam Rông",
            "Di Linh",
            "Đắk Glong",
            "Tuy Đức",
            "Tánh Linh",
            "Phú Quý",
        ],
    ),
    province(
        "Đắk Lắk",
        false,
        Central,
        CentralHighlands(45),
        4,
        &["066", "054"],
        &[
            "Ea Súp",
            "Buôn Đôn",
            "Lắk",
            "Krông Bông",
            "M'Đrắk",
            "Sông Hinh",
            "Đồng Xuân",
        ],
    ),
    province(
        "Đồng Nai",
        false,
        South,
        Ethnic::None,
        3,
        &["075", "070"],
        &[
            "Tân Phú",
            "Định Quán",
            "Vĩnh Cửu",
            "Bù Đăng",
            "Bù Gia Mập",
            "Lộc Ninh",
            "Xuân Lộc",
        ],
    ),
    province(
        "Tây Ninh",
        false,
        South,
        Ethnic::None,
        3,
        &["072", "080"],
        &[
            "Tân Châu",
            "Tân Biên",
            "Dương Minh Châu",
            "Mộc Hóa",
            "Tân Hưng",
            "Vĩnh Hưng",
            "Cần Giuộc",
        ],
    ),
    province(
        "Vĩnh Long",
        false,
        South,
        Ethnic::None,
        3,
        &["086", "083", "084"],
        &[
            "Trà Ôn",
            "Vũng Liêm",
            "Thạnh Phú",
            "Ba Tri",
            "Cầu Ngang",
            "Duyên Hải",
            "Trà Cú",
        ],
    ),
    province(
        "Đồng Tháp",
        false,
        South,
        Ethnic::None,
        3,
        &["087", "082"],
        &[
            "Tam Nông",
            "Tân Hồng",
            "Hồng Ngự",
            "Tháp Mười",
            "Tân Phú Đông",
            "Gò Công Đông",
            "Cái Bè",
        ],
    ),
    province(
        "Cà Mau",
        false,
        South,
        Ethnic::None,
        4,
        &["096", "095"],
        &[
            "Ngọc Hiển",
            "Năm Căn",
            "Đầm Dơi",
            "U Minh",
            "Trần Văn Thời",
            "Hồng Dân",
            "Phước Long",
        ],
    ),
    province(
        "An Giang",
        false,
        South,
        Ethnic::None,
        3,
        &["089", "091"],
        &[
            "Tri Tôn",
            "Tịnh Biên",
            "An Phú",
            "Kiên Hải",
            "Phú Quốc",
            "Giang Thành",
            "U Minh Thượng",
        ],
    ),
];

/// The 34 provincial-level units since the 2025 reorganisation: 6 centrally governed cities, then 28
/// provinces.
pub const PROVINCES: [&str; 34] = {
    let mut names = [""; 34];
    let mut i = 0;
    while i < names.len() {
        names[i] = PROVINCE_DATA[i].name;
        i += 1;
    }
    names
};

struct Hub {
    code: &'static str,
    name: &'static str,
    level: &'static str,
    /// Index into [`PROVINCE_DATA`].
    province: usize,
    address: &'static str,
}

/// Real, well-known hospitals that act as telehealth hubs for their regions.
const HUBS: [Hub; 8] = [
    Hub {
        code: "HUB-BACHMAI",
        name: "Bệnh viện Bạch Mai",
        level: "central",
        province: 0,
        address: "78 Giải Phóng, phường Kim Liên, thành phố Hà Nội",
    },
    Hub {
        code: "HUB-VIETDUC",
        name: "Bệnh viện Hữu nghị Việt Đức",
        level: "central",
        province: 0,
        address: "40 Tràng Thi, phường Hoàn Kiếm, thành phố Hà Nội",
    },
    Hub {
        code: "HUB-CHORAY",
        name: "Bệnh viện Chợ Rẫy",
        level: "central",
        province: 4,
        address: "201B Nguyễn Chí Thanh, Thành phố Hồ Chí Minh",
    },
    Hub {
        code: "HUB-HUE",
        name: "Bệnh viện Trung ương Huế",
        level: "central",
        province: 1,
        address: "16 Lê Lợi, thành phố Huế",
    },
    Hub {
        code: "HUB-DANANG",
        name: "Bệnh viện Đà Nẵng",
        level: "provincial",
        province: 3,
        address: "124 Hải Phòng, thành phố Đà Nẵng",
    },
    Hub {
        code: "HUB-CANTHO",
        name: "Bệnh viện Đa khoa Trung ương Cần Thơ",
        level: "central",
        province: 5,
        address: "315 Nguyễn Văn Linh, thành phố Cần Thơ",
    },
    Hub {
        code: "HUB-THAINGUYEN",
        name: "Bệnh viện Trung ương Thái Nguyên",
        level: "central",
        province: 17,
        address: "479 Lương Ngọc Quyến, tỉnh Thái Nguyên",
    },
    Hub {
        code: "HUB-NGHEAN",
        name: "Bệnh viện Hữu nghị Đa khoa Nghệ An",
        level: "provincial",
        province: 12,
        address: "Km 5 Đại lộ Lê Nin, tỉnh Nghệ An",
    },
];

// Place-name syllables. Vietnamese commune names are mostly two-syllable compounds, so pairing syllables
// from the right pool gives names that read like real ones ("Tân Phú", "Chiềng Sang", "Ia Kla").
const KINH_PLACE_FIRST: [&str; 40] = [
    "An", "Bình", "Hòa", "Phú", "Tân", "Vĩnh", "Long", "Thạnh", "Đông", "Tây", "Nam", "Bắc",
    "Xuân", "Thanh", "Quang", "Hưng", "Đức", "Phước", "Mỹ", "Thuận", "Trung", "Đại", "Hồng",
    "Minh", "Hợp", "Kim", "Ngọc", "Sơn", "Lạc", "Phong", "Cẩm", "Yên", "Thái", "Hải", "Gia",
    "Hiệp", "Lộc", "Nghĩa", "Thọ", "Quảng",
];
const KINH_PLACE_SECOND: [&str; 35] = [
    "An", "Bình", "Hòa", "Phú", "Lộc", "Thành", "Tiến", "Lợi", "Hưng", "Thịnh", "Phong", "Sơn",
    "Lâm", "Hải", "Điền", "Thuận", "Mỹ", "Đông", "Tây", "Trung", "Khánh", "Long", "Phước", "Quang",
    "Minh", "Hiệp", "Thạnh", "Tân", "Hà", "Lạc", "Xuân", "Đức", "Nghĩa", "Hội", "Thủy",
];
/// A compound of two compass points ("Đông Tây") is not a place name.
const COMPASS: [&str; 4] = ["Đông", "Tây", "Nam", "Bắc"];
const UPLAND_PLACE_FIRST: [&str; 20] = [
    "Mường", "Nậm", "Pa", "Sìn", "Tà", "Phìn", "Pắc", "Na", "Huổi", "Mù", "Chiềng", "Khau", "Lũng",
    "Thàng", "Nà", "Bản", "Sủng", "Lao", "Xín", "Hua",
];
const UPLAND_PLACE_SECOND: [&str; 30] = [
    "Tè", "Hồ", "Nhé", "Ma", "Lay", "Pồ", "Chải", "Cang", "Sáng", "Tùng", "Mạ", "Hon", "Khoa",
    "Sang", "Lìn", "Nưa", "Ngà", "Bó", "Pha", "Phìn", "Chà", "Pục", "Vai", "Mòn", "Khâu", "Là",
    "Lự", "Cuổm", "Lầu", "Hăn",
];
const HIGHLAND_PLACE_FIRST: [&str; 10] = [
    "Ia", "Ea", "Đắk", "Krông", "Chư", "Kon", "Cư", "Ya", "Pờ", "Măng",
];
const HIGHLAND_PLACE_SECOND: [&str; 30] = [
    "Grai", "Drăng", "Kla", "Mơ", "Pnôn", "Hleo", "Blang", "Sol", "Tul", "Rve", "Nông", "Hiao",
    "Lốp", "Sao", "Pal", "Dreh", "Púch", "Kar", "Ruê", "Tiêu", "Mlây", "Bông", "Wing", "Yang",
    "Pơ", "Glei", "Mar", "Rông", "Tô", "Ring",
];

// Kinh family names with rough national frequencies (percent); Hoàng/Vũ in the north are Huỳnh/Võ in the
// south, and both spellings meet in the centre.
const FAMILY_NORTH: [(&str, u32); 18] = [
    ("Nguyễn", 38),
    ("Trần", 11),
    ("Lê", 9),
    ("Phạm", 7),
    ("Hoàng", 5),
    ("Vũ", 4),
    ("Phan", 3),
    ("Đặng", 2),
    ("Bùi", 2),
    ("Đỗ", 2),
    ("Ngô", 1),
    ("Dương", 1),
    ("Đinh", 1),
    ("Lương", 1),
    ("Trịnh", 1),
    ("Đào", 1),
    ("Lý", 1),
    ("Hồ", 1),
];
const FAMILY_CENTRAL: [(&str, u32); 17] = [
    ("Nguyễn", 36),
    ("Trần", 11),
    ("Lê", 10),
    ("Phạm", 5),
    ("Hoàng", 4),
    ("Võ", 5),
    ("Phan", 5),
    ("Hồ", 4),
    ("Đặng", 2),
    ("Bùi", 2),
    ("Đỗ", 1),
    ("Ngô", 2),
    ("Dương", 1),
    ("Đinh", 1),
    ("Huỳnh", 2),
    ("Trương", 1),
    ("Thái", 1),
];
const FAMILY_SOUTH: [(&str, u32); 17] = [
    ("Nguyễn", 37),
    ("Trần", 12),
    ("Lê", 9),
    ("Phạm", 5),
    ("Huỳnh", 6),
    ("Võ", 5),
    ("Phan", 3),
    ("Đặng", 2),
    ("Bùi", 1),
    ("Đỗ", 1),
    ("Ngô", 2),
    ("Dương", 2),
    ("Trương", 2),
    ("Lâm", 2),
    ("Lý", 1),
    ("Châu", 1),
    ("Mai", 1),
];

// Middle names shifted sharply by generation: "Văn" and "Thị" dominate among people born before the late
// 1970s and are much rarer among children born after 2000.
const MIDDLE_MALE_OLD: [(&str, u32); 6] = [
    ("Văn", 70),
    ("Đức", 8),
    ("Minh", 6),
    ("Quang", 5),
    ("Hữu", 6),
    ("Xuân", 5),
];
const MIDDLE_FEMALE_OLD: [(&str, u32); 4] = [("Thị", 85), ("Ngọc", 5), ("Thu", 5), ("Kim", 5)];
const MIDDLE_MALE_MID: [(&str, u32); 9] = [
    ("Văn", 40),
    ("Minh", 10),
    ("Đức", 10),
    ("Quốc", 8),
    ("Thanh", 8),
    ("Hữu", 6),
    ("Công", 6),
    ("Anh", 6),
    ("Hoàng", 6),
];
const MIDDLE_FEMALE_MID: [(&str, u32); 7] = [
    ("Thị", 55),
    ("Ngọc", 10),
    ("Thu", 8),
    ("Thanh", 8),
    ("Phương", 6),
    ("Hồng", 7),
    ("Kim", 6),
];
const MIDDLE_MALE_NEW: [(&str, u32); 10] = [
    ("Văn", 10),
    ("Minh", 15),
    ("Gia", 12),
    ("Đức", 10),
    ("Quốc", 10),
    ("Bảo", 10),
    ("Hoàng", 10),
    ("Anh", 8),
    ("Tuấn", 8),
    ("Nhật", 7),
];
const MIDDLE_FEMALE_NEW: [(&str, u32); 10] = [
    ("Thị", 10),
    ("Ngọc", 15),
    ("Khánh", 10),
    ("Bảo", 10),
    ("Phương", 10),
    ("Thảo", 8),
    ("Minh", 10),
    ("Gia", 8),
    ("Thu", 8),
    ("Mai", 11),
];
const GIVEN_MALE_TRADITIONAL: [&str; 24] = [
    "Hùng", "Dũng", "Thắng", "Lợi", "Hòa", "Bình", "Sơn", "Hải", "Thành", "Quý", "Tuấn", "Nam",
    "Long", "Trung", "Tiến", "Cường", "Hưng", "Phúc", "Thanh", "Toàn", "Vinh", "Minh", "Hiếu",
    "Đông",
];
const GIVEN_MALE_MODERN: [&str; 22] = [
    "Khôi", "Huy", "Long", "Anh", "Nam", "Bảo", "Quân", "Kiệt", "Khang", "Phúc", "Duy", "Đạt",
    "Hiếu", "Khoa", "Lâm", "Phong", "Thịnh", "Tùng", "Vũ", "An", "Minh", "Hoàng",
];
const GIVEN_FEMALE_TRADITIONAL: [&str; 25] = [
    "Lan",
    "Hoa",
    "Hương",
    "Mai",
    "Thu",
    "Hà",
    "Hạnh",
    "Nga",
    "Liên",
    "Huệ",
    "Xuân",
    "Cúc",
    "Đào",
    "Hằng",
    "Hiền",
    "Dung",
    "Loan",
    "Nhung",
    "Oanh",
    "Tuyết",
    "Vân",
    "Yến",
    "Thủy",
    "Hồng",
    "Phượng",
];
const GIVEN_FEMALE_MODERN: [&str; 20] = [
    "Linh", "Anh", "Ngọc", "Hân", "Vy", "Trang", "Nhi", "Ngân", "Thảo", "Uyên", "Chi", "My",
    "Quỳnh", "Trâm", "Diệp", "Nhiên", "Tâm", "Phương", "Giang", "Hà",
];

// Northern-uplands personal names. H'Mông names use "A" or "Seo" as the male middle name; Thái and Tày
// names use "Văn"/"Thị" like Kinh names, with their own given names.
const HMONG_FAMILY: [&str; 8] = ["Giàng", "Sùng", "Vàng", "Thào", "Hầu", "Lý", "Mùa", "Sình"];
const HMONG_MIDDLE_MALE: [(&str, u32); 2] = [("A", 80), ("Seo", 20)];
const HMONG_GIVEN_MALE: [&str; 14] = [
    "Páo", "Chứ", "Dình", "Súa", "Lử", "Tủa", "Sính", "Dế", "Pó", "Chơ", "Sử", "Lềnh", "Tráng",
    "Thề",
];
const HMONG_GIVEN_FEMALE: [&str; 12] = [
    "Mỷ", "Dợ", "Sua", "Mai", "Chừ", "Pà", "Sính", "Dua", "Lan", "Mẩy", "Dê", "Chi",
];
const TAI_FAMILY: [&str; 15] = [
    "Lò", "Lường", "Cầm", "Quàng", "Vì", "Nông", "Ma", "Lục", "Hà", "Tòng", "Sầm", "Hoàng",
    "Triệu", "Lộc", "Bế",
];
const TAI_GIVEN_MALE: [&str; 14] = [
    "Pánh", "Ún", "Inh", "Hặc", "Xôm", "Piếng", "Khăm", "Thoản", "Hoan", "Sơn", "Thương", "Bun",
    "Tiến", "Dũng",
];
const TAI_GIVEN_FEMALE: [&str; 12] = [
    "Ơn", "Xiêng", "Ín", "Lả", "Thoa", "Mai", "Hương", "Pản", "Ủa", "Bun", "Lan", "Nhung",
];

const SPECIALIST_TITLES: [(&str, u32); 6] = [
    ("GS.TS.BS", 1),
    ("PGS.TS.BS", 3),
    ("TS.BS", 5),
    ("ThS.BS", 6),
    ("BS.CKII", 6),
    ("BS.CKI", 4),
];
/// Many commune stations are run by an assistant doctor ("y sĩ") rather than a physician.
const COMMUNE_TITLES: [(&str, u32); 3] = [("BS", 45), ("Y sĩ", 40), ("BS.CKI", 15)];
const REGIONAL_TITLES: [(&str, u32); 4] =
    [("BS", 40), ("BS.CKI", 40), ("ThS.BS", 10), ("BS.CKII", 10)];

/// Patient age bands `((first, last), weight)`. Relative to the census pyramid, telehealth users skew to
/// young children and to older adults with chronic disease.
const AGE_BANDS: [((i32, i32), u32); 10] = [
    ((0, 4), 8),
    ((5, 14), 12),
    ((15, 24), 8),
    ((25, 34), 11),
    ((35, 44), 12),
    ((45, 54), 13),
    ((55, 64), 14),
    ((65, 74), 12),
    ((75, 84), 7),
    ((85, 95), 3),
];

/// Age from which a patient counts as an adult who may have a CCCD on record.
const ADULT_AGE: i32 = 18;

/// Mobile prefixes of the big three carriers that match the 09x/03x formats clients validate.
const PHONE_PREFIXES: [&str; 15] = [
    "090", "093", "091", "094", "096", "097", "098", "032", "033", "034", "035", "036", "037",
    "038", "039",
];

/// Generates the demo network: 8 hubs with their specialists, `care_centres` care centres spread over all
/// 34 provincial-level units (one rural clinician each) and `patients_per_centre` patients per centre.
///
/// Every province gets at least one centre when `care_centres >= 34`; with fewer, the most rural provinces
/// get one each.
pub fn generate(care_centres: usize, patients_per_centre: usize) -> DemoNetwork {
    let (hubs, specialists) = hubs_and_specialists(&mut section_rng(STREAM_SPECIALISTS));
    let centres = generate_care_centres(care_centres, &mut section_rng(STREAM_CARE_CENTRES));
    let rural_clinicians =
        generate_rural_clinicians(&centres, &mut section_rng(STREAM_RURAL_CLINICIANS));
    let patients = generate_patients(
        &centres,
        patients_per_centre,
        &mut section_rng(STREAM_PATIENTS),
    );

    DemoNetwork {
        specialties: SPECIALTIES.iter().map(|s| s.seed).collect(),
        hubs,
        care_centres: centres.into_iter().map(|c| c.facility).collect(),
        specialists,
        rural_clinicians,
        patients,
    }
}

fn section_rng(stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    rng.set_stream(stream);
    rng
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn pick_weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut ticket = rng.random_range(0..total);
    for (item, weight) in items {
        if ticket < *weight {
            return *item;
        }
        ticket -= weight;
    }
    // Unreachable as the ticket is below the total; the last item keeps the function total.
    items[items.len() - 1].0
}

fn hubs_and_specialists(rng: &mut ChaCha8Rng) -> (Vec<FacilitySeed>, Vec<ClinicianSeed>) {
    // Primary specialties are dealt from successive shuffles of all hub specialties: with at least 5
    // specialists per hub (40 in all) every specialty is dealt at least three times, so each is reachable
    // across the network, while each hub still gets a varied mix.
    let hub_specialties: Vec<usize> = (1..SPECIALTIES.len()).collect();
    let mut deck: Vec<usize> = Vec::new();

    let mut hubs = Vec::with_capacity(HUBS.len());
    let mut specialists = Vec::new();
    let mut names = BTreeSet::new();
    for hub in &HUBS {
        let province = &PROVINCE_DATA[hub.province];
        let mut departments: Vec<String> = Vec::new();
        for _ in 0..rng.random_range(5..=7) {
            if deck.is_empty() {
                deck.clone_from(&hub_specialties);
                deck.shuffle(rng);
            }
            let Some(primary) = deck.pop() else { break };
            let primary = &SPECIALTIES[primary];
            let mut codes = vec![primary.seed.code];
            if !primary.related.is_empty() && rng.random_ratio(3, 10) {
                codes.push(pick(rng, primary.related));
            }
            let department = primary.department.to_owned();
            if !departments.contains(&department) {
                departments.push(department.clone());
            }
            // Specialists were born 1960-1995: a mix of the older and middle naming generations.
            let era = if rng.random_ratio(35, 100) {
                Era::Old
            } else {
                Era::Mid
            };
            specialists.push(ClinicianSeed {
                facility_code: hub.code.to_owned(),
                full_name: unique_name(rng, &mut names, province.region, Ethnic::None, era),
                title: pick_weighted(rng, &SPECIALIST_TITLES),
                department,
                specialty_codes: codes,
            });
        }
        hubs.push(FacilitySeed {
            code: hub.code.to_owned(),
            name: hub.name.to_owned(),
            kind: FacilityKindSeed::HubHospital,
            level: hub.level,
            province: province.name,
            address: hub.address.to_owned(),
            time_zone: TIME_ZONE,
            departments,
        });
    }
    (hubs, specialists)
}

/// A care centre plus the province data the later sections need to make its people sound local.
struct Centre {
    facility: FacilitySeed,
    province: &'static Province,
}

/// Splits `total` centres over the provinces: one each, the rest by weight with the largest-remainder
/// method, so the counts add up exactly and ties are broken by list order.
fn apportion(total: usize) -> [usize; 34] {
    let mut counts = [0; 34];
    if total < PROVINCE_DATA.len() {
        let mut order: Vec<usize> = (0..PROVINCE_DATA.len()).collect();
        // Stable sort: equally rural provinces keep list order.
        order.sort_by_key(|&i| std::cmp::Reverse(PROVINCE_DATA[i].weight));
        for &i in order.iter().take(total) {
            counts[i] = 1;
        }
        return counts;
    }
    let rest = total - PROVINCE_DATA.len();
    let weight_sum: usize = PROVINCE_DATA.iter().map(|p| p.weight as usize).sum();
    let mut assigned = 0;
    let mut remainders = Vec::with_capacity(PROVINCE_DATA.len());
    for (i, province) in PROVINCE_DATA.iter().enumerate() {
        let share = rest * province.weight as usize;
        counts[i] = 1 + share / weight_sum;
        assigned += share / weight_sum;
        remainders.push((share % weight_sum, i));
    }
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders.iter().take(rest - assigned) {
        counts[i] += 1;
    }
    counts
}

fn generate_care_centres(total: usize, rng: &mut ChaCha8Rng) -> Vec<Centre> {
    let counts = apportion(total);
    let mut per_province: Vec<Vec<PlannedCentre>> = Vec::new();
    for (province, &count) in PROVINCE_DATA.iter().zip(&counts) {
        per_province.push(province_centres(province, count, rng));
    }

    // Interleave provinces (one from each in turn) so that the first page of any listing already shows the
    // whole country rather than 40 stations in Hà Nội.
    let mut centres = Vec::with_capacity(total);
    let mut queues: Vec<_> = per_province.into_iter().map(Vec::into_iter).collect();
    while centres.len() < total {
        for (province, queue) in PROVINCE_DATA.iter().zip(queues.iter_mut()) {
            if let Some(planned) = queue.next() {
                centres.push(Centre {
                    facility: FacilitySeed {
                        code: format!("CC-{:04}", centres.len() + 1),
                        name: planned.name,
                        kind: FacilityKindSeed::CareCentre,
                        level: planned.level,
                        province: province.name,
                        address: planned.address,
                        time_zone: TIME_ZONE,
                        departments: planned.departments,
                    },
                    province,
                });
            }
        }
    }
    centres
}

/// A care centre before it gets its code, which depends on the order across all provinces.
struct PlannedCentre {
    name: String,
    level: &'static str,
    address: String,
    departments: Vec<String>,
}

/// The `count` care centres of one province.
fn province_centres(province: &Province, count: usize, rng: &mut ChaCha8Rng) -> Vec<PlannedCentre> {
    let suffix = if province.name.starts_with("Thành phố") {
        province.name.to_owned()
    } else if province.city {
        format!("thành phố {}", province.name)
    } else {
        format!("tỉnh {}", province.name)
    };
    // Roughly one regional centre per eight stations, as former district centres each serve a cluster of
    // communes; limited to the former districts we have names for.
    let regional = (count / 8).min(province.districts.len());
    let mut districts: Vec<&str> = province.districts.to_vec();
    districts.shuffle(rng);

    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut centres = Vec::with_capacity(count);
    for district in districts.into_iter().take(regional) {
        used.insert(district.to_owned());
        centres.push(PlannedCentre {
            name: format!("Trung tâm Y tế khu vực {district}"),
            level: "regional",
            address: format!(
                "Tổ dân phố {}, xã {district}, {suffix}",
                rng.random_range(1..=6)
            ),
            departments: REGIONAL_DEPARTMENTS
                .iter()
                .map(|d| (*d).to_owned())
                .collect(),
        });
    }
    // Cities are mostly urban wards; provinces mostly rural communes.
    let ward_percent = if province.city { 55 } else { 12 };
    while centres.len() < count {
        let ward = rng.random_ratio(ward_percent, 100);
        let (place, ethnic) = unique_place(rng, &mut used, province.ethnic, ward);
        let (unit, hamlet) = if ward {
            ("phường", format!("Tổ dân phố {}", rng.random_range(1..=15)))
        } else if ethnic && matches!(province.ethnic, NorthernUplands(_)) {
            (
                "xã",
                format!("Bản {}", place_name(rng, Ethnic::NorthernUplands(100)).0),
            )
        } else if matches!(province.region, South) {
            ("xã", format!("Ấp {}", rng.random_range(1..=9)))
        } else {
            ("xã", format!("Thôn {}", rng.random_range(1..=12)))
        };
        centres.push(PlannedCentre {
            name: format!("Trạm Y tế {unit} {place}"),
            level: "commune",
            address: format!("{hamlet}, {unit} {place}, {suffix}"),
            departments: vec![CARE_DEPARTMENT.to_owned()],
        });
    }
    // Regional centres were planned first; mix them in so codes do not cluster by level.
    centres.shuffle(rng);
    centres
}

/// A place name not yet used in the province, and whether it came from the ethnic pool.
fn unique_place(
    rng: &mut ChaCha8Rng,
    used: &mut BTreeSet<String>,
    ethnic: Ethnic,
    ward: bool,
) -> (String, bool) {
    // Wards are towns, which carry Kinh names even in the mountains.
    let ethnic = if ward { Ethnic::None } else { ethnic };
    for _ in 0..64 {
        let (name, is_ethnic) = place_name(rng, ethnic);
        if used.insert(name.clone()) {
            return (name, is_ethnic);
        }
    }
    // The syllable pools hold hundreds of names per province; only absurd sizes get here, and a number
    // keeps the name unique (as the numbered wards of Hồ Chí Minh City once were).
    let (base, is_ethnic) = place_name(rng, ethnic);
    let mut n = 2;
    loop {
        let name = format!("{base} {n}");
        if used.insert(name.clone()) {
            return (name, is_ethnic);
        }
        n += 1;
    }
}

fn place_name(rng: &mut ChaCha8Rng, ethnic: Ethnic) -> (String, bool) {
    let pools: Option<(&[&str], &[&str])> = match ethnic {
        NorthernUplands(percent) if rng.random_ratio(percent, 100) => {
            Some((&UPLAND_PLACE_FIRST, &UPLAND_PLACE_SECOND))
        }
        CentralHighlands(percent) if rng.random_ratio(percent, 100) => {
            Some((&HIGHLAND_PLACE_FIRST, &HIGHLAND_PLACE_SECOND))
        }
        _ => None,
    };
    if let Some((first, second)) = pools {
        return (format!("{} {}", pick(rng, first), pick(rng, second)), true);
    }
    loop {
        let first = pick(rng, &KINH_PLACE_FIRST);
        let second = pick(rng, &KINH_PLACE_SECOND);
        if first != second && !(COMPASS.contains(&first) && COMPASS.contains(&second)) {
            return (format!("{first} {second}"), false);
        }
    }
}

fn generate_rural_clinicians(centres: &[Centre], rng: &mut ChaCha8Rng) -> Vec<ClinicianSeed> {
    let mut names = BTreeSet::new();
    centres
        .iter()
        .map(|centre| {
            let titles: &[(&str, u32)] = if centre.facility.level == "regional" {
                &REGIONAL_TITLES
            } else {
                &COMMUNE_TITLES
            };
            // Rural clinicians are mostly local, often from the same ethnic community as their patients.
            let era = if rng.random_ratio(1, 4) {
                Era::Old
            } else {
                Era::Mid
            };
            ClinicianSeed {
                facility_code: centre.facility.code.clone(),
                full_name: unique_name(
                    rng,
                    &mut names,
                    centre.province.region,
                    centre.province.ethnic,
                    era,
                ),
                title: pick_weighted(rng, titles),
                department: CARE_DEPARTMENT.to_owned(),
                specialty_codes: vec![GENERAL_PRACTICE],
            }
        })
        .collect()
}

fn generate_patients(
    centres: &[Centre],
    per_centre: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<PatientSeed> {
    let mut phones = BTreeSet::new();
    let mut national_ids = BTreeSet::new();
    let mut patients = Vec::with_capacity(centres.len() * per_centre);
    for centre in centres {
        let province = centre.province;
        for _ in 0..per_centre {
            let band = pick_weighted(rng, &AGE_BANDS);
            let age = rng.random_range(band.0..=band.1);
            let date_of_birth = birth_date(rng, age);
            let female = rng.random_ratio(51, 100);
            let era = Era::of(date_of_birth.year());
            let full_name = person_name(rng, province.region, province.ethnic, era, female);
            let phone = unique(rng, &mut phones, |rng| {
                format!(
                    "{}{:07}",
                    pick(rng, &PHONE_PREFIXES),
                    rng.random_range(0..10_000_000)
                )
            });
            let national_id = (age >= ADULT_AGE && rng.random_ratio(7, 10)).then(|| {
                unique(rng, &mut national_ids, |rng| {
                    cccd(rng, province, date_of_birth.year(), female)
                })
            });
            patients.push(PatientSeed {
                full_name,
                date_of_birth,
                sex: if female { "female" } else { "male" },
                phone,
                national_id,
                home_facility_code: centre.facility.code.clone(),
            });
        }
    }
    patients
}

/// A date of birth making the person exactly `age` years old on [`REFERENCE_DATE`].
fn birth_date(rng: &mut ChaCha8Rng, age: i32) -> NaiveDate {
    // REFERENCE_DATE is 1 January, so shifting its year never fails; the fallbacks only keep this total.
    let latest = REFERENCE_DATE
        .with_year(REFERENCE_DATE.year() - age)
        .unwrap_or(REFERENCE_DATE);
    let earliest = REFERENCE_DATE
        .with_year(REFERENCE_DATE.year() - age - 1)
        .unwrap_or(REFERENCE_DATE);
    let span = u64::try_from((latest - earliest).num_days()).unwrap_or(365);
    latest
        .checked_sub_days(Days::new(rng.random_range(0..span)))
        .unwrap_or(latest)
}

/// A 12-digit citizen id card (CCCD) number with the real layout: birth-province code (3 digits), a digit
/// for sex and century (0/1 male/female born 1900-1999, 2/3 for 2000-2099), the last two digits of the
/// birth year, then six random digits.
fn cccd(rng: &mut ChaCha8Rng, province: &Province, birth_year: i32, female: bool) -> String {
    let century = if birth_year >= 2000 { 2 } else { 0 };
    let sex_century = century + u32::from(female);
    format!(
        "{}{}{:02}{:06}",
        pick(rng, province.id_codes),
        sex_century,
        birth_year.rem_euclid(100),
        rng.random_range(0..1_000_000)
    )
}

/// Draws until `make` returns a value not in `seen`. Phone numbers and ids come from spaces of millions,
/// so a collision is rare and a redraw almost always succeeds at once.
fn unique(
    rng: &mut ChaCha8Rng,
    seen: &mut BTreeSet<String>,
    mut make: impl FnMut(&mut ChaCha8Rng) -> String,
) -> String {
    loop {
        let value = make(rng);
        if seen.insert(value.clone()) {
            return value;
        }
    }
}

/// Naming generation, by year of birth.
#[derive(Clone, Copy)]
enum Era {
    Old,
    Mid,
    New,
}

impl Era {
    fn of(birth_year: i32) -> Self {
        match birth_year {
            ..1975 => Era::Old,
            1975..2000 => Era::Mid,
            _ => Era::New,
        }
    }
}

/// A clinician name distinct from the others already given, so staff lists and logins are not ambiguous.
/// Tries a few times and then accepts a repeat, which only very large networks can need.
fn unique_name(
    rng: &mut ChaCha8Rng,
    seen: &mut BTreeSet<String>,
    region: Region,
    ethnic: Ethnic,
    era: Era,
) -> String {
    let mut name = String::new();
    for _ in 0..16 {
        let female = rng.random_ratio(1, 2);
        name = person_name(rng, region, ethnic, era, female);
        if !seen.contains(&name) {
            break;
        }
    }
    seen.insert(name.clone());
    name
}

/// Family + middle + given name, in Vietnamese order.
fn person_name(
    rng: &mut ChaCha8Rng,
    region: Region,
    ethnic: Ethnic,
    era: Era,
    female: bool,
) -> String {
    if let NorthernUplands(percent) = ethnic
        && rng.random_ratio(percent, 100)
    {
        return upland_name(rng, female);
    }
    let family = pick_weighted(
        rng,
        match region {
            North => &FAMILY_NORTH[..],
            Central => &FAMILY_CENTRAL[..],
            South => &FAMILY_SOUTH[..],
        },
    );
    let middles: &[(&str, u32)] = match (era, female) {
        (Era::Old, false) => &MIDDLE_MALE_OLD,
        (Era::Old, true) => &MIDDLE_FEMALE_OLD,
        (Era::Mid, false) => &MIDDLE_MALE_MID,
        (Era::Mid, true) => &MIDDLE_FEMALE_MID,
        (Era::New, false) => &MIDDLE_MALE_NEW,
        (Era::New, true) => &MIDDLE_FEMALE_NEW,
    };
    let middle = pick_weighted(rng, middles);
    let (traditional, modern): (&[&str], &[&str]) = if female {
        (&GIVEN_FEMALE_TRADITIONAL, &GIVEN_FEMALE_MODERN)
    } else {
        (&GIVEN_MALE_TRADITIONAL, &GIVEN_MALE_MODERN)
    };
    let modern_percent = match era {
        Era::Old => 5,
        Era::Mid => 45,
        Era::New => 85,
    };
    // "Ngọc Ngọc" or "Minh Minh" are not names: redraw when the given name repeats the middle one.
    let given = loop {
        let pool = if rng.random_ratio(modern_percent, 100) {
            modern
        } else {
            traditional
        };
        let given = pick(rng, pool);
        if given != middle {
            break given;
        }
    };
    format!("{family} {middle} {given}")
}

fn upland_name(rng: &mut ChaCha8Rng, female: bool) -> String {
    if rng.random_ratio(2, 5) {
        let family = pick(rng, &HMONG_FAMILY);
        let (middle, given) = if female {
            ("Thị", pick(rng, &HMONG_GIVEN_FEMALE))
        } else {
            (
                pick_weighted(rng, &HMONG_MIDDLE_MALE),
                pick(rng, &HMONG_GIVEN_MALE),
            )
        };
        format!("{family} {middle} {given}")
    } else {
        let family = pick(rng, &TAI_FAMILY);
        let (middle, given) = if female {
            ("Thị", pick(rng, &TAI_GIVEN_FEMALE))
        } else {
            ("Văn", pick(rng, &TAI_GIVEN_MALE))
        };
        format!("{family} {middle} {given}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use chrono::Datelike;

    use super::*;

    fn network() -> DemoNetwork {
        generate(1000, 3)
    }

    fn age_on_reference(dob: NaiveDate) -> i32 {
        let mut age = REFERENCE_DATE.year() - dob.year();
        if (dob.month(), dob.day()) > (REFERENCE_DATE.month(), REFERENCE_DATE.day()) {
            age -= 1;
        }
        age
    }

    #[test]
    fn same_arguments_give_identical_networks() {
        assert_eq!(generate(1000, 3), generate(1000, 3));
        assert_eq!(generate(37, 5), generate(37, 5));
    }

    #[test]
    fn facilities_do_not_depend_on_patient_count() {
        let a = generate(120, 1);
        let b = generate(120, 4);
        assert_eq!(a.hubs, b.hubs);
        assert_eq!(a.care_centres, b.care_centres);
        assert_eq!(a.specialists, b.specialists);
        assert_eq!(a.rural_clinicians, b.rural_clinicians);
    }

    #[test]
    fn counts_match_the_request() {
        let net = network();
        assert_eq!(net.specialties.len(), 12);
        assert_eq!(net.hubs.len(), 8);
        assert_eq!(net.care_centres.len(), 1000);
        assert_eq!(net.rural_clinicians.len(), 1000);
        assert_eq!(net.patients.len(), 3000);
        for hub in &net.hubs {
            let n = net
                .specialists
                .iter()
                .filter(|s| s.facility_code == hub.code)
                .count();
            assert!((5..=7).contains(&n), "{} has {n} specialists", hub.code);
        }
        for centre in &net.care_centres {
            let clinicians = net
                .rural_clinicians
                .iter()
                .filter(|c| c.facility_code == centre.code);
            assert_eq!(clinicians.count(), 1, "{}", centre.code);
        }
    }

    #[test]
    fn small_and_empty_networks_work() {
        let empty = generate(0, 0);
        assert_eq!(empty.hubs.len(), 8);
        assert!(empty.care_centres.is_empty() && empty.patients.is_empty());
        let tiny = generate(5, 2);
        assert_eq!(tiny.care_centres.len(), 5);
        assert_eq!(tiny.patients.len(), 10);
        let exact = generate(34, 0);
        let provinces: BTreeSet<_> = exact.care_centres.iter().map(|c| c.province).collect();
        assert_eq!(provinces.len(), 34);
    }

    #[test]
    fn provinces_are_the_34_units() {
        assert_eq!(PROVINCES.iter().collect::<BTreeSet<_>>().len(), 34);
        assert_eq!(PROVINCE_DATA.iter().filter(|p| p.city).count(), 6);
        assert!(PROVINCES.contains(&"Thành phố Hồ Chí Minh"));
        let net = network();
        let used: BTreeSet<_> = net.care_centres.iter().map(|c| c.province).collect();
        assert_eq!(used.len(), 34);
        for facility in net.hubs.iter().chain(&net.care_centres) {
            assert!(
                PROVINCES.contains(&facility.province),
                "{}",
                facility.province
            );
        }
    }

    #[test]
    fn rural_provinces_get_more_centres() {
        let net = network();
        let count = |name: &str| {
            net.care_centres
                .iter()
                .filter(|c| c.province == name)
                .count()
        };
        assert!(count("Lai Châu") > 2 * count("Hà Nội"));
        assert!(count("Điện Biên") > count("Bắc Ninh"));
    }

    #[test]
    fn codes_and_names_are_unique() {
        let net = network();
        let codes: BTreeSet<_> = net
            .hubs
            .iter()
            .chain(&net.care_centres)
            .map(|f| &f.code)
            .collect();
        assert_eq!(codes.len(), 1008);
        let names: BTreeSet<_> = net
            .hubs
            .iter()
            .chain(&net.care_centres)
            .map(|f| (f.province, &f.name))
            .collect();
        assert_eq!(names.len(), 1008);
        let specialties: BTreeSet<_> = net.specialties.iter().map(|s| s.code).collect();
        assert_eq!(specialties.len(), net.specialties.len());
    }

    #[test]
    fn national_ids_are_unique_cccds_for_adults_only() {
        let net = network();
        let mut seen = BTreeSet::new();
        let (mut adults, mut with_id) = (0, 0);
        for patient in &net.patients {
            let age = age_on_reference(patient.date_of_birth);
            if age >= ADULT_AGE {
                adults += 1;
            }
            let Some(id) = &patient.national_id else {
                continue;
            };
            assert!(age >= ADULT_AGE, "child with id: {patient:?}");
            with_id += 1;
            assert_eq!(id.len(), 12);
            assert!(id.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(
                id[4..6],
                format!("{:02}", patient.date_of_birth.year() % 100)
            );
            let sex_digit = id.as_bytes()[3] - b'0';
            assert_eq!(sex_digit % 2 == 1, patient.sex == "female");
            assert!(seen.insert(id.clone()), "duplicate id {id}");
        }
        let share = f64::from(with_id) / f64::from(adults);
        assert!(
            (0.6..0.8).contains(&share),
            "share of adults with id: {share}"
        );
    }

    #[test]
    fn departments_are_consistent() {
        let net = network();
        let facilities: BTreeMap<_, _> = net
            .hubs
            .iter()
            .chain(&net.care_centres)
            .map(|f| (f.code.as_str(), f))
            .collect();
        for clinician in net.specialists.iter().chain(&net.rural_clinicians) {
            let facility = facilities[clinician.facility_code.as_str()];
            assert!(
                facility.departments.contains(&clinician.department),
                "{clinician:?}"
            );
        }
        for hub in &net.hubs {
            assert_eq!(hub.kind, FacilityKindSeed::HubHospital);
            for department in &hub.departments {
                assert!(
                    net.specialists
                        .iter()
                        .any(|s| s.facility_code == hub.code && &s.department == department),
                    "{} has empty department {department}",
                    hub.code
                );
            }
        }
        for centre in &net.care_centres {
            assert_eq!(centre.kind, FacilityKindSeed::CareCentre);
            assert!(centre.departments.iter().any(|d| d == CARE_DEPARTMENT));
        }
    }

    #[test]
    fn specialties_are_covered() {
        let net = network();
        let known: BTreeSet<_> = net.specialties.iter().map(|s| s.code).collect();
        assert!(known.contains(GENERAL_PRACTICE));
        for specialist in &net.specialists {
            assert!((1..=2).contains(&specialist.specialty_codes.len()));
            assert!(specialist.specialty_codes.iter().all(|c| known.contains(c)));
            assert!(!specialist.specialty_codes.contains(&GENERAL_PRACTICE));
        }
        for specialty in net
            .specialties
            .iter()
            .filter(|s| s.code != GENERAL_PRACTICE)
        {
            let n = net
                .specialists
                .iter()
                .filter(|s| s.specialty_codes.contains(&specialty.code))
                .count();
            assert!(n >= 2, "{} has {n} specialists", specialty.code);
        }
        for clinician in &net.rural_clinicians {
            assert_eq!(clinician.specialty_codes, vec![GENERAL_PRACTICE]);
        }
        for specialty in &net.specialties {
            assert!(
                specialty
                    .code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
    }

    #[test]
    fn phones_are_vietnamese_mobiles() {
        let net = network();
        for patient in &net.patients {
            let phone = &patient.phone;
            assert_eq!(phone.len(), 10, "{phone}");
            assert!(phone.bytes().all(|b| b.is_ascii_digit()), "{phone}");
            assert!(
                phone.starts_with("09") || phone.starts_with("03"),
                "{phone}"
            );
        }
    }

    #[test]
    fn patients_are_realistic() {
        let net = network();
        let centres: BTreeSet<_> = net.care_centres.iter().map(|c| c.code.as_str()).collect();
        let mut ages = Vec::new();
        for patient in &net.patients {
            assert!(centres.contains(patient.home_facility_code.as_str()));
            assert!(patient.sex == "female" || patient.sex == "male");
            assert!(
                patient.full_name.split(' ').count() >= 3,
                "{}",
                patient.full_name
            );
            let age = age_on_reference(patient.date_of_birth);
            assert!((0..=95).contains(&age), "age {age}");
            ages.push(age);
        }
        assert!(ages.iter().any(|&a| a < 5) && ages.iter().any(|&a| a >= 80));
        let female = net.patients.iter().filter(|p| p.sex == "female").count();
        assert!((1350..1700).contains(&female), "{female} women of 3000");
    }

    #[test]
    fn facilities_have_valid_levels_and_zone() {
        let net = network();
        for hub in &net.hubs {
            assert!(["central", "provincial"].contains(&hub.level));
        }
        let regional = net
            .care_centres
            .iter()
            .filter(|c| c.level == "regional")
            .count();
        assert!(
            regional > 0 && regional < 200,
            "{regional} regional centres"
        );
        for centre in &net.care_centres {
            assert!(["regional", "commune"].contains(&centre.level));
            let prefix = if centre.level == "regional" {
                "Trung tâm Y tế khu vực "
            } else {
                "Trạm Y tế "
            };
            assert!(centre.name.starts_with(prefix), "{}", centre.name);
            assert!(
                centre.address.ends_with(centre.province),
                "{}",
                centre.address
            );
        }
        for facility in net.hubs.iter().chain(&net.care_centres) {
            assert_eq!(facility.time_zone, "Asia/Ho_Chi_Minh");
        }
    }

    #[test]
    fn text_is_precomposed_unicode() {
        // Decomposed diacritics (combining marks) would make equal-looking names compare unequal.
        let net = network();
        let mut texts: Vec<&str> = PROVINCES.to_vec();
        texts.extend(
            net.hubs
                .iter()
                .chain(&net.care_centres)
                .flat_map(|f| [f.name.as_str(), &f.address]),
        );
        texts.extend(
            net.specialists
                .iter()
                .chain(&net.rural_clinicians)
                .map(|c| c.full_name.as_str()),
        );
        texts.extend(net.patients.iter().map(|p| p.full_name.as_str()));
        texts.extend(net.specialties.iter().map(|s| s.name_vi));
        for text in texts {
            assert!(
                !text.chars().any(|c| ('\u{300}'..='\u{36f}').contains(&c)),
                "{text}"
            );
        }
    }
}
