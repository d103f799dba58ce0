//! Copies between GStreamer video buffers (padded strides) and packed `Frame`s.

use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::IoError;
use crate::frame::{Frame, Matrix, Plane, Yuv420};

pub fn matrix_of(info: &gst_video::VideoInfo) -> Matrix {
    match info.colorimetry().matrix() {
        gst_video::VideoColorMatrix::Bt601 => Matrix::Bt601,
        gst_video::VideoColorMatrix::Bt709 => Matrix::Bt709,
        // Unknown: follow the usual convention of SD vs HD.
        _ if info.height() < 600 => Matrix::Bt601,
        _ => Matrix::Bt709,
    }
}

/// Reads an I420 buffer into a packed frame.
pub fn frame_from_buffer(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    index: u64,
) -> Result<Frame, IoError> {
    let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info)
        .map_err(|e| IoError::Frame(format!("cannot map decoded frame: {e}")))?;
    read_frame(&vf, index)
}

/// A mapped I420 video frame (a decoder's, or an element's in place) as a packed frame,
/// with its buffer's PTS and duration and its caps' colour matrix.
pub fn read_frame<T>(vf: &gst_video::VideoFrameRef<T>, index: u64) -> Result<Frame, IoError> {
    let info = vf.info();
    let (w, h) = (info.width() as usize, info.height() as usize);
    let mut planes = Vec::with_capacity(3);
    for i in 0..3u32 {
        let comp_w = if i == 0 { w } else { w.div_ceil(2) };
        let comp_h = if i == 0 { h } else { h.div_ceil(2) };
        // The buffer's own layout (its video meta), which may pad rows beyond the caps'.
        let stride = vf.plane_stride()[i as usize] as usize;
        let src = vf
            .plane_data(i)
            .map_err(|e| IoError::Frame(format!("cannot read plane {i}: {e}")))?;
        let mut data = Vec::with_capacity(comp_w * comp_h);
        for row in 0..comp_h {
            let line = src.get(row * stride..row * stride + comp_w).ok_or_else(|| {
                IoError::Frame(format!("decoded plane {i} is shorter than its caps say ({comp_w}x{comp_h}, stride {stride})"))
            })?;
            data.extend_from_slice(line);
        }
        planes.push(Plane {
            width: comp_w,
            height: comp_h,
            data,
        });
    }
    let v = planes
        .pop()
        .ok_or_else(|| IoError::Frame("missing V plane".into()))?;
    let u = planes
        .pop()
        .ok_or_else(|| IoError::Frame("missing U plane".into()))?;
    let y = planes
        .pop()
        .ok_or_else(|| IoError::Frame("missing Y plane".into()))?;
    let buffer = vf.buffer();
    Ok(Frame {
        index,
        pts: buffer.pts().map(|t| t.nseconds()),
        duration: buffer.duration().map(|t| t.nseconds()),
        matrix: matrix_of(info),
        picture: Yuv420 { y, u, v },
    })
}

/// A buffer laid out per `info` holding the frame, with its PTS and duration. When the
/// packed planes already have `info`'s layout (rows exactly as wide as the plane, planes
/// one after another: every I420 frame whose width is a multiple of 8), the planes
/// themselves become the buffer's memories, with a video meta so consumers map each
/// plane where it is: no copy and no fresh allocation to fault in. Otherwise the planes
/// are copied into a new buffer.
pub fn buffer_from_frame(
    frame: Frame,
    info: &gst_video::VideoInfo,
) -> Result<gst::Buffer, IoError> {
    let (w, h) = (frame.picture.width(), frame.picture.height());
    if (w, h) != (info.width() as usize, info.height() as usize) {
        return Err(IoError::Frame(format!(
            "frame is {w}x{h} but the output was set up for {}x{}",
            info.width(),
            info.height()
        )));
    }
    if !packed_layout(&frame, info) {
        return copied_buffer(&frame, info);
    }
    let Frame {
        pts,
        duration,
        picture,
        ..
    } = frame;
    let mut buffer = gst::Buffer::new();
    let buf = buffer
        .get_mut()
        .ok_or_else(|| IoError::Frame("output buffer is not writable".into()))?;
    for plane in [picture.y, picture.u, picture.v] {
        buf.append_memory(gst::Memory::from_mut_slice(plane.data));
    }
    buf.set_pts(pts.map(gst::ClockTime::from_nseconds));
    buf.set_duration(duration.map(gst::ClockTime::from_nseconds));
    gst_video::VideoMeta::add_full(
        buf,
        gst_video::VideoFrameFlags::empty(),
        info.format(),
        info.width(),
        info.height(),
        info.offset(),
        info.stride(),
    )
    .map_err(|e| IoError::Frame(format!("cannot describe the output planes: {e}")))?;
    Ok(buffer)
}

/// Whether the frame's packed planes, one after another, are exactly `info`'s layout.
fn packed_layout(frame: &Frame, info: &gst_video::VideoInfo) -> bool {
    let planes = frame.picture.planes();
    let mut offset = 0;
    for (i, plane) in planes.iter().enumerate() {
        if info.stride().get(i).map(|&s| s as usize) != Some(plane.width)
            || info.offset().get(i) != Some(&offset)
            || plane.data.len() != plane.width * plane.height
        {
            return false;
        }
        offset += plane.data.len();
    }
    info.format() == gst_video::VideoFormat::I420 && info.n_planes() == 3 && offset == info.size()
}

/// The frame's planes copied into a new buffer laid out per `info`.
fn copied_buffer(frame: &Frame, info: &gst_video::VideoInfo) -> Result<gst::Buffer, IoError> {
    let mut buffer = gst::Buffer::with_size(info.size())
        .map_err(|e| IoError::Frame(format!("cannot allocate output buffer: {e}")))?;
    {
        let buf = buffer
            .get_mut()
            .ok_or_else(|| IoError::Frame("output buffer is not writable".into()))?;
        buf.set_pts(frame.pts.map(gst::ClockTime::from_nseconds));
        buf.set_duration(frame.duration.map(gst::ClockTime::from_nseconds));
        write_frame(buf, frame, info)?;
    }
    Ok(buffer)
}

/// Writes a packed frame's planes into a buffer laid out per `info` (same size).
pub fn write_frame(
    buf: &mut gst::BufferRef,
    frame: &Frame,
    info: &gst_video::VideoInfo,
) -> Result<(), IoError> {
    let mut vf = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, info)
        .map_err(|e| IoError::Frame(format!("cannot map output buffer: {e}")))?;
    write_planes(&mut vf, frame)
}

/// Writes a packed frame's planes into a mapped, writable video frame of the same size.
pub fn write_planes(
    vf: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    frame: &Frame,
) -> Result<(), IoError> {
    for (i, plane) in frame.picture.planes().into_iter().enumerate() {
        let stride = vf.plane_stride()[i] as usize;
        let dst = vf
            .plane_data_mut(i as u32)
            .map_err(|e| IoError::Frame(format!("cannot write plane {i}: {e}")))?;
        for (row, line) in plane.data.chunks_exact(plane.width.max(1)).enumerate() {
            dst.get_mut(row * stride..row * stride + plane.width)
                .ok_or_else(|| {
                    IoError::Frame(format!("output plane {i} is smaller than the frame"))
                })?
                .copy_from_slice(line);
        }
    }
    Ok(())
}

/// Reads a pulled sample into a frame, following caps changes mid-stream (size,
/// colourimetry, interlacing): `info` holds the caps last seen. None for a sample
/// without a buffer.
pub fn frame_from_sample(
    sample: &gst::Sample,
    info: &mut Option<gst_video::VideoInfo>,
    index: u64,
) -> Result<Option<Frame>, IoError> {
    let caps = sample
        .caps()
        .ok_or_else(|| IoError::Frame("decoded sample without caps".into()))?;
    if info
        .as_ref()
        .is_none_or(|i| i.to_caps().ok().as_ref() != Some(&caps.to_owned()))
    {
        *info = Some(
            gst_video::VideoInfo::from_caps(caps)
                .map_err(|e| IoError::Frame(format!("unusable decoded caps {caps}: {e}")))?,
        );
    }
    match (sample.buffer(), info.as_ref()) {
        (Some(buffer), Some(info)) => frame_from_buffer(buffer, info, index).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: usize, h: usize) -> Frame {
        let mut picture = Yuv420::filled(w, h, (0, 0, 0));
        for (k, plane) in [&mut picture.y, &mut picture.u, &mut picture.v]
            .into_iter()
            .enumerate()
        {
            for (i, v) in plane.data.iter_mut().enumerate() {
                *v = ((i * 7 + k * 50) % 251) as u8;
            }
        }
        Frame {
            index: 3,
            pts: Some(40_000_000),
            duration: Some(40_000_000),
            matrix: Matrix::Bt709,
            picture,
        }
    }

    /// Both ways a frame becomes a buffer (its own planes at 64 wide, a copy at 66 wide,
    /// whose chroma rows GStreamer pads to 36) read back as the same frame.
    #[test]
    fn output_buffers_read_back_as_the_frame() {
        super::super::init().expect("GStreamer initialises");
        for (w, memories) in [(64usize, 3usize), (66, 1)] {
            let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w as u32, 48)
                .build()
                .expect("valid caps");
            let f = frame(w, 48);
            let expected = f.picture.clone();
            let buffer = buffer_from_frame(f, &info).expect("a buffer");
            assert_eq!(buffer.n_memory(), memories, "width {w}");
            assert_eq!(buffer.pts().map(|t| t.nseconds()), Some(40_000_000));
            let back = frame_from_buffer(&buffer, &info, 3).expect("readable");
            assert_eq!(back.picture, expected, "width {w}");
        }
    }
}
