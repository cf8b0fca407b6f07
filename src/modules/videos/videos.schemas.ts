import { pageOf, PageQuerySchema, text, UuidInput } from "../../http/schemas";
import { z } from "../../http/zod";

const Title = text(1, 200).refine((t) => t.trim().length > 0, "must not be blank");
const Description = text(0, 5000);

/** The multipart text fields of an upload. */
export const UploadFields = z.object({ title: Title, description: Description.optional() });

/** The upload as OpenAPI describes it: the file part and the text fields (multer reads them). */
export const UploadForm = UploadFields.extend({ video: z.string().openapi({ format: "binary", description: "MP4, QuickTime or WebM; at most MAX_UPLOAD_BYTES" }) }).openapi("VideoUpload");

export const UpdateVideoBody = z
  .strictObject({ title: Title.optional(), description: Description.nullable().optional() })
  .openapi("UpdateVideoRequest");

export const VideoSchema = z
  .object({
    id: z.uuid(),
    title: z.string(),
    description: z.string().nullable(),
    mime_type: z.string(),
    size: z.number().int(),
    duration: z.number().optional(),
    uploader: z.string(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
    stream_url: z.url(),
  })
  .openapi("Video");

export const VideoPageSchema = pageOf(VideoSchema).openapi("VideoPage");
export const VideoParams = z.object({ id: UuidInput });
export const VideoListQuery = PageQuerySchema;
export const StreamQuery = z.object({
  expires: z.string().regex(/^[0-9]{1,12}$/).optional(),
  sig: z.string().max(100).optional(),
});
