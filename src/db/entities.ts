import { SessionEntity } from "../modules/accounts/session.entity";
import { UserEntity } from "../modules/accounts/user.entity";
import { ChannelEntity } from "../modules/chat/channel.entity";

/** Every TypeORM entity; modules add theirs here. */
export const entities = [UserEntity, SessionEntity, ChannelEntity];
