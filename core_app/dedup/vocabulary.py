"""Words the synthetic national data set is made of: names, places, subjects, respondents.

Surname shares follow published estimates of Vietnamese surname frequency (Nguyễn about 38%,
Trần 11%, Lê 9.5%, Phạm 7%, ...); the rest is plausible rather than measured.
"""

from __future__ import annotations

SURNAMES = (
    ("Nguyễn", 38.4), ("Trần", 11.0), ("Lê", 9.5), ("Phạm", 7.1), ("Hoàng", 5.1), ("Huỳnh", 2.0),
    ("Phan", 4.5), ("Vũ", 3.9), ("Võ", 1.9), ("Đặng", 2.1), ("Bùi", 2.0), ("Đỗ", 1.4), ("Hồ", 1.3),
    ("Ngô", 1.3), ("Dương", 1.0), ("Lý", 0.5), ("Đinh", 0.8), ("Trương", 0.7), ("Đoàn", 0.6),
    ("Lương", 0.5), ("Mai", 0.5), ("Tạ", 0.3), ("Hà", 0.5), ("Lưu", 0.3), ("Cao", 0.4), ("Chu", 0.2),
    ("Triệu", 0.2), ("Lâm", 0.3), ("Quách", 0.1), ("Kiều", 0.1), ("Thái", 0.2), ("Tô", 0.2),
)
MIDDLE_MALE = ("Văn", "Hữu", "Đức", "Minh", "Quốc", "Thanh", "Công", "Xuân", "Đình", "Ngọc", "Trọng", "Anh",
               "Mạnh", "Quang", "Tiến", "Thế", "Duy", "Hoàng", "Gia", "Bá")
MIDDLE_FEMALE = ("Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Minh", "Bích", "Kim", "Mỹ", "Thùy", "Hồng",
                 "Phương", "Diệu", "Khánh", "Hải", "Lan", "Tuyết", "Quỳnh", "Hoài")
GIVEN_MALE = ("An", "Bình", "Cường", "Dũng", "Đức", "Hải", "Hiếu", "Hùng", "Hưng", "Huy", "Khánh", "Khoa",
              "Kiên", "Lâm", "Long", "Lực", "Mạnh", "Minh", "Nam", "Nghĩa", "Phong", "Phúc", "Quân", "Quang",
              "Sơn", "Tài", "Tâm", "Thắng", "Thành", "Thịnh", "Toàn", "Trung", "Tuấn", "Tùng", "Việt", "Vinh",
              "Bảo", "Chiến", "Đạt", "Định", "Giang", "Hào", "Hậu", "Hoà", "Lộc", "Lợi", "Nhân", "Tú", "Vũ", "Hoàng")
GIVEN_FEMALE = ("Anh", "Châu", "Chi", "Dung", "Giang", "Hà", "Hạnh", "Hằng", "Hiền", "Hoa", "Hồng", "Huệ",
                "Hương", "Lan", "Liên", "Linh", "Loan", "Mai", "Nga", "Ngân", "Ngọc", "Nhung", "Oanh", "Phương",
                "Quỳnh", "Tâm", "Thảo", "Thơm", "Thu", "Thủy", "Trang", "Tuyết", "Uyên", "Vân", "Xuân", "Yến",
                "Diệp", "Hậu", "Lệ", "Lụa", "Mơ", "My", "Nhàn", "Nhi", "Thắm", "Thoa", "Trâm", "Vy", "Hảo")
STREETS = ("thôn Đông", "thôn Tây", "thôn Trung", "xóm 1", "xóm 2", "xóm 3", "tổ dân phố 4", "tổ dân phố 7",
           "ấp Tân Hòa", "ấp Phú Lợi", "khu phố 2", "khu phố 5", "đường Lê Lợi", "đường Trần Hưng Đạo",
           "đường Nguyễn Trãi", "đường Hai Bà Trưng", "đường Quang Trung", "bản Mường", "đường 30/4")
COMPANIES = ("Công ty TNHH Xây dựng Thành Công", "Công ty Cổ phần Đầu tư Phát triển Đô thị",
             "Công ty TNHH MTV Môi trường Đô thị", "Công ty Cổ phần Khoáng sản Miền Bắc", "Ban Quản lý dự án",
             "Trung tâm Phát triển quỹ đất", "Công ty TNHH Chăn nuôi Hòa Phát", "Hợp tác xã Nông nghiệp")

# Subjects per kind; {resp} is the respondent, {place} the commune.
SUBJECTS = {
    "complaint": (
        "Khiếu nại quyết định thu hồi đất của {resp}",
        "Khiếu nại về giá bồi thường, hỗ trợ khi Nhà nước thu hồi đất tại {place}",
        "Khiếu nại quyết định cưỡng chế thi hành quyết định thu hồi đất",
        "Khiếu nại việc không cấp giấy chứng nhận quyền sử dụng đất",
        "Khiếu nại quyết định xử phạt vi phạm hành chính trong lĩnh vực xây dựng",
        "Khiếu nại việc bố trí tái định cư không thỏa đáng tại {place}",
        "Khiếu nại quyết định kỷ luật cán bộ của {resp}",
        "Khiếu nại việc chậm chi trả chế độ chính sách người có công",
        "Khiếu nại về việc điều chỉnh quy hoạch sử dụng đất tại {place}",
        "Khiếu nại quyết định giải quyết tranh chấp đất đai của {resp}",
    ),
    "denunciation": (
        "Tố cáo cán bộ địa chính {place} nhận tiền khi làm thủ tục đất đai",
        "Tố cáo {resp} lập khống hồ sơ bồi thường",
        "Tố cáo hành vi lạm dụng chức vụ, quyền hạn trong quản lý đất công",
        "Tố cáo sai phạm trong thu chi ngân sách tại {place}",
        "Tố cáo việc giao đất trái thẩm quyền của {resp}",
        "Tố cáo hành vi nhũng nhiễu trong giải quyết thủ tục hành chính",
        "Tố cáo sai phạm trong đấu thầu dự án tại {place}",
    ),
    "recommendation": (
        "Kiến nghị sửa chữa đường giao thông nông thôn tại {place}",
        "Phản ánh ô nhiễm môi trường do hoạt động của {resp}",
        "Kiến nghị cấp giấy chứng nhận quyền sử dụng đất",
        "Phản ánh tình trạng lấn chiếm hành lang giao thông tại {place}",
        "Kiến nghị giải quyết chế độ trợ cấp xã hội",
        "Phản ánh việc xây dựng trái phép tại {place}",
        "Kiến nghị xem xét lại mức thu phí dịch vụ của {resp}",
        "Phản ánh tiếng ồn, khói bụi từ xưởng sản xuất của {resp}",
        "Kiến nghị về tiến độ giải phóng mặt bằng dự án tại {place}",
    ),
    "multi": (
        "Khiếu nại, tố cáo việc thu hồi đất và bồi thường tại {place}",
        "Đơn khiếu nại, kiến nghị về quyết định của {resp}",
    ),
}
# How a citizen rewords a petition they send again.
REWORD = (
    ("Khiếu nại quyết định", "Đơn khiếu nại đối với quyết định"),
    ("Khiếu nại về", "Khiếu nại lần nữa về"),
    ("Khiếu nại việc", "Đề nghị xem xét lại việc"),
    ("Tố cáo", "Đơn tố cáo"),
    ("Kiến nghị", "Tiếp tục kiến nghị"),
    ("Phản ánh", "Tiếp tục phản ánh"),
    ("tại", "ở"),
    ("của", "do"),
)
SENTENCES = (
    "Gia đình tôi đã nhiều lần gửi đơn nhưng chưa được giải quyết dứt điểm.",
    "Đề nghị cơ quan có thẩm quyền xem xét, giải quyết theo quy định của pháp luật.",
    "Việc này ảnh hưởng nghiêm trọng đến đời sống và sinh hoạt của gia đình tôi.",
    "Kèm theo đơn là bản sao các giấy tờ có liên quan.",
    "Tôi cam đoan những nội dung trình bày trên là đúng sự thật.",
    "Nhiều hộ dân trong khu vực cũng có cùng ý kiến.",
    "Đề nghị làm rõ trách nhiệm của cá nhân, tổ chức có liên quan.",
    "Mức bồi thường thấp hơn nhiều so với giá thị trường tại thời điểm thu hồi.",
)
